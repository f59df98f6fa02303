// Integration Hub on Azure, for `azd up`: one resource group with the function app and every
// resource the code uses, all reached with the app's user-assigned managed identity and
// least-privilege data-plane roles. See infra/README.md for the resources, settings and roles.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Azure region of every resource.')
param location string

@description('Cosmos DB capacity: serverless (default) or provisioned (autoscale throughput).')
@allowed([
  'serverless'
  'provisioned'
])
param cosmosCapacityMode string = 'serverless'

@description('Autoscale maximum RU/s of the database when cosmosCapacityMode is provisioned.')
param cosmosAutoscaleMaxThroughput int = 1000

@description('Service Bus tier: Standard (256 KB messages) or Premium (1 MB here).')
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

@description('Service Bus maxDeliveryCount; the app records a failing message on this delivery (IHUB_QUEUE_MAX_DELIVERY_COUNT).')
@minValue(1)
param queueMaxDeliveryCount int = 10

@description('Deploy Azure Cache for Redis for the distributed rate limiter (Entra ID auth).')
param enableRedis bool = false

@description('Create the Event Grid subscriptions. Event Grid validates the target function, which exists only after the first deploy: the postdeploy hook sets this to true and provisions again.')
param deployEventSubscriptions bool = false

@description('Name of a Key Vault secret holding IHUB_OAUTH_CLIENTS (JSON of each provider OAuth app); store it with `az keyvault secret set`, then provision. Empty: OAuth connect is off.')
param oauthClientsSecretName string = ''

@description('Memory of each function instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the function app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Concurrent HTTP requests per instance.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Reserved: private networking (VNet integration, private endpoints) is not built by this template yet, see infra/README.md; the value is only recorded as a tag.')
param enablePrivateNetworking bool = false

var tags = {
  'azd-env-name': environmentName
  app: 'integration-hub'
  privateNetworking: string(enablePrivateNetworking)
}
var token = toLower(uniqueString(subscription().id, environmentName, location))
var prefix = 'ihub'
var deploymentContainerName = 'app-package-${take(token, 7)}'
var queueMaxMessageBytes = (serviceBusSku == 'Premium') ? 1048576 : 262144

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${prefix}-${token}'
    location: location
    tags: tags
  }
}

// Event Grid writes dead letters with its own identity, allowed onto the dead-letter container only.
module deadLetterIdentity 'modules/identity.bicep' = {
  name: 'deadLetterIdentity'
  scope: rg
  params: {
    name: 'id-${prefix}-eg-${token}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${prefix}-${token}'
    appInsightsName: 'appi-${prefix}-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${prefix}${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    deadLetterPrincipalId: deadLetterIdentity.outputs.principalId
    deploymentContainerName: deploymentContainerName
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    name: 'cosmos-${prefix}-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    capacityMode: cosmosCapacityMode
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${prefix}-${take(token, 13)}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: 'sb-${prefix}-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    sku: serviceBusSku
    maxDeliveryCount: queueMaxDeliveryCount
  }
}

module redis 'modules/redis.bicep' = if (enableRedis) {
  name: 'redis'
  scope: rg
  params: {
    name: 'redis-${prefix}-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    planName: 'plan-${prefix}-${token}'
    appName: 'func-${prefix}-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabaseName: cosmos.outputs.databaseName
    keyVaultUri: keyVault.outputs.uri
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    eventGridTopicEndpoint: eventGrid.outputs.topicEndpoint
    queueMaxDeliveryCount: queueMaxDeliveryCount
    queueMaxMessageBytes: queueMaxMessageBytes
    keyVaultName: keyVault.outputs.name
    oauthClientsSecretName: oauthClientsSecretName
    redisHostName: enableRedis ? redis.outputs.hostName : ''
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    topicName: 'evgt-${prefix}-${token}'
    systemTopicName: 'evgst-${prefix}-kv-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    keyVaultName: keyVault.outputs.name
    functionAppName: 'func-${prefix}-${token}'
    storageAccountName: storage.outputs.name
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    deadLetterIdentityId: deadLetterIdentity.outputs.id
    deploySubscriptions: deployEventSubscriptions
  }
}

module availability 'modules/availability.bicep' = {
  name: 'availability'
  scope: rg
  params: {
    name: 'health-${prefix}-${token}'
    location: location
    tags: tags
    appInsightsName: monitoring.outputs.appInsightsName
    healthUrl: 'https://${functionApp.outputs.defaultHostName}/api/health'
  }
}

// What azd and the README use (no secrets: every connection is identity-based).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = 'https://${functionApp.outputs.defaultHostName}'
output IHUB_HEALTH_URL string = 'https://${functionApp.outputs.defaultHostName}/api/health'
output AZURE_CLIENT_ID string = identity.outputs.clientId
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output KEY_VAULT_URI string = keyVault.outputs.uri
output KEY_VAULT_NAME string = keyVault.outputs.name
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output EVENTGRID_TOPIC_ENDPOINT string = eventGrid.outputs.topicEndpoint
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output REDIS_HOST string = enableRedis ? redis.outputs.hostName : ''

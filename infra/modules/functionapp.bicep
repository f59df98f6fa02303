// The function app: a Flex Consumption (FC1) plan and a Linux function app running Python 3.11,
// deployed from a blob container, with a user-assigned identity for the host storage, the
// triggers and every data-plane call. FUNCTIONS_WORKER_RUNTIME and the other settings Flex no
// longer takes are not set (functionAppConfig.runtime replaces them).
param planName string
param appName string
param location string
param tags object
@description('Resource id of the user-assigned identity.')
param identityId string
@description('Client id of that identity (AZURE_CLIENT_ID and the identity-based connections).')
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param appInsightsName string
param cosmosEndpoint string
param cosmosDatabaseName string
param keyVaultUri string
param serviceBusNamespace string
param eventGridTopicEndpoint string
@description('Service Bus maxDeliveryCount, told to the app as IHUB_QUEUE_MAX_DELIVERY_COUNT.')
param queueMaxDeliveryCount int
@description('Largest queue message for the Service Bus tier (Standard: 262144).')
param queueMaxMessageBytes int
@description('Key Vault holding the secrets app settings refer to.')
param keyVaultName string
@description('Name of a Key Vault secret with the OAuth apps JSON (IHUB_OAUTH_CLIENTS); empty: OAuth connect is off.')
param oauthClientsSecretName string = ''
@description('Redis host name for the distributed rate limiter; empty when Redis is not deployed.')
param redisHostName string = ''
@description('Memory of each instance, in MB (512, 2048 or 4096).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048
@description('Most instances Flex Consumption scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100
@description('Concurrent HTTP requests per instance.')
param httpPerInstanceConcurrency int = 16

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// App settings, named as shared/config.py Settings reads them (tests/infra/test_cross_check.py
// checks every name against the settings model, and that everything Azure needs is here).
var appSettings = {
  // Functions host: identity-based storage and telemetry
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  AZURE_CLIENT_ID: identityClientId
  // backends (one per port)
  IHUB_DOCUMENT_BACKEND: 'cosmos'
  IHUB_SECRET_BACKEND: 'keyvault'
  IHUB_QUEUE_BACKEND: 'servicebus'
  IHUB_EVENT_BACKEND: 'eventgrid'
  IHUB_BLOB_BACKEND: 'azure'
  IHUB_DATA_DIR: '/tmp/ihub'
  // Cosmos DB
  COSMOS_ENDPOINT: cosmosEndpoint
  COSMOS_DATABASE: cosmosDatabaseName
  COSMOS_CONTAINER_INTEGRATIONS: 'integrations'
  COSMOS_CONTAINER_ID_CLAIMS: 'id_claims'
  COSMOS_CONTAINER_SCHEDULES: 'schedules'
  COSMOS_CONTAINER_CHECKPOINTS: 'checkpoints'
  COSMOS_CONTAINER_RUNS: 'runs'
  COSMOS_CONTAINER_RECORDS: 'records'
  COSMOS_CONTAINER_WEBHOOK_EVENTS: 'webhook_events'
  COSMOS_CONTAINER_DEAD_LETTERS: 'dead_letters'
  COSMOS_CONTAINER_PUSH_RECEIPTS: 'push_receipts'
  COSMOS_CONTAINER_ENTITIES: 'entities'
  COSMOS_CONTAINER_CONFLICTS: 'conflicts'
  COSMOS_CONTAINER_MERGE_PROPOSALS: 'merge_proposals'
  COSMOS_CONTAINER_WEBHOOK_SUBSCRIPTIONS: 'webhook_subscriptions'
  COSMOS_CONTAINER_CREDENTIAL_LEASES: 'credential_leases'
  COSMOS_CONTAINER_DERIVED_RECORDS: 'derived_records'
  // Key Vault
  KEY_VAULT_URI: keyVaultUri
  // Service Bus (identity-based connection of the triggers and of the app's sender)
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identityClientId
  SYNC_INBOUND_QUEUE: 'sync-inbound'
  SYNC_OUTBOUND_QUEUE: 'sync-outbound'
  IHUB_QUEUE_MAX_DELIVERY_COUNT: string(queueMaxDeliveryCount)
  IHUB_QUEUE_DUPLICATE_WINDOW_SECONDS: '600'
  IHUB_QUEUE_MAX_MESSAGE_BYTES: string(queueMaxMessageBytes)
  // Event Grid
  EVENTGRID_TOPIC_ENDPOINT: eventGridTopicEndpoint
  // Blob Storage
  BLOB_ACCOUNT_URL: storage.properties.primaryEndpoints.blob
  BLOB_CONTAINER_WEBHOOKS: 'webhook-archive'
  BLOB_CONTAINER_CLAIM_CHECKS: 'queue-claim-checks'
  // timer schedules (the host resolves the triggers' %SETTING% expressions from these)
  SYNC_SCHEDULE: '0 */1 * * * *'
  TOKEN_REFRESH_SCHEDULE: '0 */5 * * * *'
  SUBSCRIPTION_RENEW_SCHEDULE: '0 */10 * * * *'
  // behaviour: the settings model's defaults, stated so an operator sees and tunes them here
  WEBHOOK_MAX_BODY_BYTES: '26214400'
  WEBHOOK_INLINE_MAX_BYTES: '65536'
  WEBHOOK_EVENT_TTL_SECONDS: '2592000'
  WEBHOOK_SWEEP_AFTER_SECONDS: '120'
  IHUB_WEBHOOK_CERTS_URLS: '{}'
  TOKEN_REFRESH_WINDOW_SECONDS: '900'
  TOKEN_REFRESH_CONCURRENCY: '16'
  CREDENTIAL_EXPIRY_NOTICE_DAYS: '14'
  IHUB_OAUTH_BASE_URLS: '{}'
  SYNC_STALE_RUN_SECONDS: '3600'
  IHUB_PROVIDER_BASE_URLS: '{}'
  IHUB_HTTP_TIMEOUT_SECONDS: '30'
  IHUB_MAX_RETRY_WAIT_SECONDS: '3900'
  IHUB_RATE_LIMIT_BACKEND: 'memory'
  IHUB_RATE_LIMIT_OVERRIDES: '[]'
  IHUB_RATE_LIMIT_FAIL_CLOSED_SECONDS: '30'
  IHUB_RATE_LIMIT_FALLBACK_SHARE: '0.25'
  // telemetry: Application Insights (above); the dev host's exporters stay off
  IHUB_TRACES_EXPORTER: 'none'
  IHUB_LOG_FORMAT: 'text'
}

// Settings of the optional parts, set only when the part is deployed. The cache accepts only
// Entra ID, so the Redis URL carries no password (the app signs in with its identity).
var optionalSettings = empty(redisHostName) ? {} : {
  IHUB_RATE_LIMIT_BACKEND: 'redis'
  IHUB_REDIS_URL: 'rediss://${redisHostName}:6380/0'
}

// Secrets never travel as values: a Key Vault reference, resolved by the platform with the app
// identity (keyVaultReferenceIdentity), and only when the operator has stored the secret.
var oauthSettings = empty(oauthClientsSecretName) ? {} : {
  IHUB_OAUTH_CLIENTS: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${oauthClientsSecretName})'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    keyVaultReferenceIdentity: identityId
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: union(appSettings, optionalSettings, oauthSettings, {
    // where providers reach the webhook routes and the OAuth callback (the app's own host name)
    IHUB_PUBLIC_BASE_URL: 'https://${app.properties.defaultHostName}/api'
    IHUB_OAUTH_REDIRECT_URL: 'https://${app.properties.defaultHostName}/api/oauth/callback'
  })
}

// Basic-auth publishing (FTP and SCM) stays off: azd deploys with Entra ID.
resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
output id string = app.id
output defaultHostName string = app.properties.defaultHostName

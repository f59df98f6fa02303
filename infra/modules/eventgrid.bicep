// Event Grid: the custom topic the app publishes domain events to (EventGrid Data Sender), the Key
// Vault's system topic, and one event subscription per entry of shared/subscriptions.py
// SUBSCRIPTIONS, delivering to its function in its schema, with its retry policy and dead-lettering
// to blob.
param topicName string
param systemTopicName string
param location string
param tags object
@description('Principal of the app identity.')
param principalId string
@description('Key Vault whose secret events the app receives.')
param keyVaultName string
@description('Function app the subscriptions deliver to.')
param functionAppName string
@description('Storage account holding the dead-letter container.')
param storageAccountName string
param deadLetterContainerName string
@description('Identity Event Grid writes dead letters with (Blob Data Contributor on that container).')
param deadLetterIdentityId string
@description('Create the subscriptions. Event Grid checks that the function exists, so the first `azd up` provisions without them and the postdeploy hook provisions again with them.')
param deploySubscriptions bool = true

// shared/subscriptions.py SUBSCRIPTIONS (tests/infra/test_cross_check.py compares the two).
var keyVaultSubscriptions = [
  {
    name: 'keyvault-secret-events'
    function: 'KeyVaultSecretEvents'
    includedEventTypes: [
      'Microsoft.KeyVault.SecretNearExpiry'
      'Microsoft.KeyVault.SecretExpired'
    ]
    eventDeliverySchema: 'EventGridSchema'
    maxDeliveryAttempts: 30
    eventTimeToLiveInMinutes: 1440
  }
]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource domainTopic 'Microsoft.EventGrid/topics@2024-06-01-preview' = {
  name: topicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'EventGridSchema'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    minimumTlsVersionAllowed: '1.2'
  }
}

// EventGrid Data Sender: the app publishes IntegrationHub.* events (shared/backends/eventgrid_events.py).
resource dataSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(domainTopic.id, principalId, 'd5a91429-5739-47e2-a06b-3470a27159e7')
  scope: domainTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'd5a91429-5739-47e2-a06b-3470a27159e7')
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource keyVaultTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: systemTopicName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${deadLetterIdentityId}': {}
    }
  }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource keyVaultSubscriptionResources 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = [for s in keyVaultSubscriptions: if(deploySubscriptions) {
  parent: keyVaultTopic
  name: s.name
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/${s.function}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: s.includedEventTypes
    }
    eventDeliverySchema: s.eventDeliverySchema
    retryPolicy: {
      maxDeliveryAttempts: s.maxDeliveryAttempts
      eventTimeToLiveInMinutes: s.eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: deadLetterIdentityId
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}]

output topicName string = domainTopic.name
output topicEndpoint string = domainTopic.properties.endpoint
output systemTopicName string = keyVaultTopic.name

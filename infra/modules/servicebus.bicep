// Service Bus: the work queues the code sends to and triggers on. Local auth (SAS) is off; the
// app identity sends (Data Sender) and the Functions host receives with it (Data Receiver).
param name string
param location string
param tags object
@description('Principal of the app identity.')
param principalId string
@description('Standard (256 KB messages) or Premium. Keep IHUB_QUEUE_MAX_MESSAGE_BYTES in step.')
@allowed([
  'Standard'
  'Premium'
])
param sku string = 'Standard'
@description('maxDeliveryCount of every queue; the app setting IHUB_QUEUE_MAX_DELIVERY_COUNT is the same value.')
param maxDeliveryCount int = 10
@description('Duplicate detection window; IHUB_QUEUE_DUPLICATE_WINDOW_SECONDS is the same, in seconds.')
param duplicateDetectionWindow string = 'PT10M'

// Every queue of the app (SYNC_*_QUEUE settings; function_app.py triggers on each, and on its
// $DeadLetterQueue). requiresSession matches the triggers' is_sessions_enabled
// (shared/sessions.py session_enabled_queues). tests/infra/test_cross_check.py compares them.
var queues = [
  {
    name: 'sync-inbound'
    setting: 'SYNC_INBOUND_QUEUE'
    requiresSession: true
  }
  {
    name: 'sync-outbound'
    setting: 'SYNC_OUTBOUND_QUEUE'
    requiresSession: true
  }
]

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queueResources 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [for q in queues: {
  parent: namespace
  name: q.name
  properties: {
    requiresSession: q.requiresSession
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    maxDeliveryCount: maxDeliveryCount
    // One page of work is far below a minute; the host renews the lock up to
    // maxAutoLockRenewalDuration (host.json) for the rare long one.
    lockDuration: 'PT1M'
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P14D'
    enablePartitioning: false
  }
}]

// Azure Service Bus Data Sender: the app enqueues pages, webhooks, retries and pushes.
resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace.id, principalId, '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39')
  scope: namespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39')
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Azure Service Bus Data Receiver: the host's queue and $DeadLetterQueue triggers.
resource receiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace.id, principalId, '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0')
  scope: namespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0')
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'

// Cosmos DB (NoSQL): the account (serverless by default), database `ihub` and every container the
// document store uses. Keys are disabled; the app identity has the built-in Data Contributor role.
param name string
param location string
param tags object
@description('Principal of the app identity.')
param principalId string
@description('Database name (COSMOS_DATABASE).')
param databaseName string = 'ihub'
@description('serverless (default) or provisioned (autoscale throughput on the database).')
@allowed([
  'serverless'
  'provisioned'
])
param capacityMode string = 'serverless'
@description('Autoscale maximum RU/s of the database when capacityMode is provisioned.')
param autoscaleMaxThroughput int = 1000

// Every container of the document store: Settings.containers plus COSMOS_CONTAINER_ID_CLAIMS
// (shared/config.py). shared/backends/cosmos_documents.py creates each on `/tenant_id` with TTL on
// and no default (defaultTtl -1), so a document's own `ttl` field decides (webhook_events,
// push_receipts). tests/infra/test_cross_check.py compares this list with the code.
var partitionKeyPath = '/tenant_id'
var containers = [
  {
    name: 'integrations'
    setting: 'COSMOS_CONTAINER_INTEGRATIONS'
    defaultTtl: -1
  }
  {
    name: 'id_claims'
    setting: 'COSMOS_CONTAINER_ID_CLAIMS'
    defaultTtl: -1
  }
  {
    name: 'schedules'
    setting: 'COSMOS_CONTAINER_SCHEDULES'
    defaultTtl: -1
  }
  {
    name: 'checkpoints'
    setting: 'COSMOS_CONTAINER_CHECKPOINTS'
    defaultTtl: -1
  }
  {
    name: 'runs'
    setting: 'COSMOS_CONTAINER_RUNS'
    defaultTtl: -1
  }
  {
    name: 'records'
    setting: 'COSMOS_CONTAINER_RECORDS'
    defaultTtl: -1
  }
  {
    name: 'webhook_events'
    setting: 'COSMOS_CONTAINER_WEBHOOK_EVENTS'
    defaultTtl: -1
  }
  {
    name: 'dead_letters'
    setting: 'COSMOS_CONTAINER_DEAD_LETTERS'
    defaultTtl: -1
  }
  {
    name: 'push_receipts'
    setting: 'COSMOS_CONTAINER_PUSH_RECEIPTS'
    defaultTtl: -1
  }
  {
    name: 'entities'
    setting: 'COSMOS_CONTAINER_ENTITIES'
    defaultTtl: -1
  }
  {
    name: 'conflicts'
    setting: 'COSMOS_CONTAINER_CONFLICTS'
    defaultTtl: -1
  }
  {
    name: 'merge_proposals'
    setting: 'COSMOS_CONTAINER_MERGE_PROPOSALS'
    defaultTtl: -1
  }
  {
    name: 'webhook_subscriptions'
    setting: 'COSMOS_CONTAINER_WEBHOOK_SUBSCRIPTIONS'
    defaultTtl: -1
  }
  {
    name: 'credential_leases'
    setting: 'COSMOS_CONTAINER_CREDENTIAL_LEASES'
    defaultTtl: -1
  }
  {
    name: 'derived_records'
    setting: 'COSMOS_CONTAINER_DERIVED_RECORDS'
    defaultTtl: -1
  }
]

// Bulky payloads are never filtered or sorted on: record data, webhook bodies and headers,
// dead-lettered message bodies. Excluding them keeps writes cheap (RU per write grows with the
// number of indexed paths).
var excludedPaths = [
  '/data/*'
  '/body/*'
  '/body/?'
  '/headers/*'
  '/"_etag"/?'
]

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    capabilities: (capacityMode == 'serverless') ? [
      {
        name: 'EnableServerless'
      }
    ] : []
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        tier: 'Continuous7Days'
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
    options: (capacityMode == 'serverless') ? {} : {
      autoscaleSettings: {
        maxThroughput: autoscaleMaxThroughput
      }
    }
  }
}

resource sqlContainers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = [for c in containers: {
  parent: database
  name: c.name
  properties: {
    resource: {
      id: c.name
      partitionKey: {
        paths: [
          partitionKeyPath
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: c.defaultTtl
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [for p in excludedPaths: {
          path: p
        }]
      }
    }
  }
}]

// Cosmos DB Built-in Data Contributor (data plane: read, write, query every container).
resource dataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: account
  name: guid(account.id, principalId, '00000000-0000-0000-0000-000000000002')
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002'
    principalId: principalId
    scope: account.id
  }
}

output name string = account.name
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name

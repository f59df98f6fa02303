// Azure Cache for Redis for the distributed rate limiter (optional: main.bicep deploys it only when
// enableRedis is true). Access keys are disabled; the app identity signs in with Entra ID through a
// Data Contributor access policy assignment.
param name string
param location string
param tags object
@description('Principal of the app identity.')
param principalId string
@description('Cache SKU: Basic, Standard or Premium.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param skuName string = 'Standard'
@description('Cache size (C0-C6 for Basic/Standard, P1-P5 for Premium).')
param capacity int = 0

resource cache 'Microsoft.Cache/redis@2024-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: {
      name: skuName
      family: (skuName == 'Premium') ? 'P' : 'C'
      capacity: capacity
    }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    disableAccessKeyAuthentication: true
    redisConfiguration: {
      'aad-enabled': 'true'
    }
  }
}

// Data Contributor access policy: the rate limiter's scripts (EVAL/EVALSHA) and keys, no admin commands.
resource dataContributor 'Microsoft.Cache/redis/accessPolicyAssignments@2024-11-01' = {
  parent: cache
  name: guid(cache.id, principalId, 'Data Contributor')
  properties: {
    accessPolicyName: 'Data Contributor'
    objectId: principalId
    objectIdAlias: 'ihub-app'
  }
}

output name string = cache.name
output hostName string = cache.properties.hostName
output sslPort int = cache.properties.sslPort

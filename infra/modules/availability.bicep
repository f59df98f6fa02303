// An Application Insights standard availability test on GET /api/health: every 5 minutes from three
// regions, expecting 200 (every port's backend reachable with the app identity's roles).
param name string
param location string
param tags object
param appInsightsName string
@description('The URL the test calls (https://<app host>/api/health).')
param healthUrl string
@description('Seconds between runs from each location (300 or 900).')
param frequency int = 300

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource healthTest 'Microsoft.Insights/webtests@2022-06-15' = {
  name: name
  location: location
  tags: union(tags, {
    'hidden-link:${appInsights.id}': 'Resource'
  })
  kind: 'standard'
  properties: {
    SyntheticMonitorId: name
    Name: 'GET /api/health'
    Enabled: true
    Frequency: frequency
    Timeout: 30
    Kind: 'standard'
    RetryEnabled: true
    Locations: [
      {
        Id: 'us-va-ash-azr'
      }
      {
        Id: 'emea-nl-ams-azr'
      }
      {
        Id: 'apac-sg-sin-azr'
      }
    ]
    Request: {
      RequestUrl: healthUrl
      HttpVerb: 'GET'
      ParseDependentRequests: false
    }
    ValidationRules: {
      ExpectedHttpStatusCode: 200
      SSLCheck: true
      SSLCertRemainingLifetimeCheck: 7
    }
  }
}

output name string = healthTest.name

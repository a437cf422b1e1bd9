// Service Bus: the pipeline's queues and the notifications topic; Entra only.
param name string
param location string
param tags object = {}
@description('Queues the functions trigger on (functions/*/function.json).')
param queues array = [ 'intake', 'training-completed', 'evaluation-completed', 'approvals' ]
@description('Topics the functions publish to.')
param topics array = [ 'notifications' ]

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: { name: 'Premium', tier: 'Premium', capacity: 1 }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    zoneRedundant: true
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [for q in queues: {
  parent: namespace
  name: q
  properties: {
    // The handler answers 500 only for retryable failures; ten deliveries span transient
    // outages, then the message is kept in the dead-letter queue for an operator.
    maxDeliveryCount: 10
    // Longer than the slowest handler step between lock renewals by the host.
    lockDuration: 'PT5M'
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P14D'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
  }
}]

resource topic 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = [for t in topics: {
  parent: namespace
  name: t
  properties: {
    defaultMessageTimeToLive: 'P14D'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
  }
}]

output id string = namespace.id
output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'

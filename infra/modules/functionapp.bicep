// The function app: Flex Consumption (Linux), custom handler `fthub serve`, system-assigned
// identity, identity-based connections only.
param name string
param location string
param tags object = {}
param storageAccountName string
param blobEndpoint string
param serviceBusNamespace string
param insightsConnectionString string
// `custom` is the Flex Consumption runtime of a custom handler (FunctionAppRuntimeName.Custom in
// the App Service REST API; Az.Functions Get-AzFunctionAppFlexConsumptionRuntime lists "Custom").
// Learn publishes no version for it; '1.0' is the one the Flex custom-handler samples use. ARM
// accepts an uncatalogued version silently and the app then fails at start-up, so check the
// region's catalog first: `az functionapp list-flexconsumption-runtimes -l <region> --runtime custom`.
@description('Flex Consumption custom-handler runtime version.')
param customRuntimeVersion string = '1.0'
@description('Topology file inside the package (written by scripts/package).')
param topologyPath string = 'topology.json'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true, zoneRedundant: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_222:SubmitRun and the Status dashboard are HTTP functions that users call; they require function keys.
  //checkov:skip=CKV_AZURE_17:Callers authenticate with function keys (or Entra at a gateway); client certificates would also block the Event Grid webhook.
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero per trigger on a zone-redundant plan; a fixed minimum instance count does not apply.
  //checkov:skip=CKV_AZURE_213:The only health endpoint (Status) requires a function key; the platform's readiness check on the handler's GET / covers liveness.
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}deployments'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 }
      runtime: { name: 'custom', version: customRuntimeVersion }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: [
        { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'ServiceBusConnection__fullyQualifiedNamespace', value: serviceBusNamespace }
        { name: 'ServiceBusConnection__credential', value: 'managedidentity' }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD' }
        { name: 'FTHUB_TOPOLOGY', value: topologyPath }
        { name: 'FTHUB_LOG_FORMAT', value: 'json' }
      ]
    }
  }
}

output id string = app.id
output name string = app.name
output principalId string = app.identity.principalId

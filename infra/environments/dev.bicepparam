using '../environment.bicep'

param prefix = readEnvironmentVariable('FTHUB_PREFIX', 'contosoft')
param environment = 'dev'
param regions = [
  'swedencentral'
  'eastus2'
]
param functionPrincipalId = readEnvironmentVariable('FTHUB_FUNCTION_PRINCIPAL_ID', '')

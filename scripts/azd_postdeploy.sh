#!/usr/bin/env sh
# azd postdeploy hook: create the Event Grid subscriptions once the functions exist.
# Event Grid checks that an AzureFunction destination exists when the subscription is created,
# so the first `azd up` provisions without them (IHUB_EVENT_SUBSCRIPTIONS unset) and this hook
# provisions again with them. Later runs find the flag set and do nothing.
set -eu
if [ "${IHUB_EVENT_SUBSCRIPTIONS:-false}" = "true" ]; then
  echo "Event Grid subscriptions already provisioned."
  exit 0
fi
azd env set IHUB_EVENT_SUBSCRIPTIONS true
azd provision --no-prompt
echo "Event Grid subscriptions provisioned. Health: ${IHUB_HEALTH_URL:-<SERVICE_API_URI>/api/health}"

{{/*
What each service needs, from its Config (services/<name>/<name>d/config.go). This follows from the
code, so it is not a value: api (an HTTP API besides health and metrics), signs (a signing key), oidc
(bearer tokens), catalogue, integrations, policies (the Rego bundle), database (GRANTLINE_DATABASE_URL),
targets (the fulfilment connectors), directory (policy: the groups it checks a scheduled request with at
its start, when the files have a directory), credentialKey, buckets (the variable sizing its key-value buckets),
callsAPIs (the console: it calls every service with an API, over their Services, and keeps its session
key in its own Secret), checkpoints (the checkpointer: its signed-note key and the witnesses), notifies
(the notifier: the directory and routing files, its channels' secrets and egress, the identity
provider's token endpoint, and approval's API, which it calls as the person who pressed Approve in
Slack; its own API is Slack's interaction callback, which the console never calls).
*/}}
{{- define "grantline.needs" -}}
intake: {api: true, signs: true, oidc: true, catalogue: true, integrations: true, buckets: GRANTLINE_REPLICAS}
policy: {signs: true, catalogue: true, policies: true, directory: true, buckets: GRANTLINE_POLICY_STATE_REPLICAS}
approval: {api: true, signs: true, oidc: true, catalogue: true, database: true}
fulfilment: {api: true, signs: true, oidc: true, catalogue: true, targets: true, credentialKey: required, buckets: GRANTLINE_REPLICAS}
revoker: {api: true, signs: true, oidc: true, catalogue: true, targets: true, credentialKey: optional, buckets: GRANTLINE_REPLICAS}
query: {api: true, oidc: true, catalogue: true, database: true}
console: {api: true, oidc: true, catalogue: true, buckets: GRANTLINE_REPLICAS, callsAPIs: true}
notifier: {api: true, catalogue: true, buckets: GRANTLINE_REPLICAS, notifies: true}
checkpointer: {checkpoints: true}
{{- end -}}

{{- define "grantline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every name; 40 characters leave room for the longest suffix ("-credential-key") within 63. */}}
{{- define "grantline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "grantline.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "grantline.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select one component's pods; call with (dict "root" $ "component" name). */}}
{{- define "grantline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "grantline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "grantline.labels" -}}
{{ include "grantline.selectorLabels" . }}
app.kubernetes.io/part-of: grantline
app.kubernetes.io/version: {{ include "grantline.tag" .root | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Every pod of the release, whatever its component: what the default-deny policy selects. */}}
{{- define "grantline.releaseSelector" -}}
app.kubernetes.io/name: {{ include "grantline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "grantline.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{/* The image of one binary; call with (dict "root" $ "name" "intake"). */}}
{{- define "grantline.image" -}}
{{- $img := .root.Values.image -}}
{{- $repo := printf "%s/%s" $img.repositoryPrefix .name -}}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $repo }}{{ end -}}
{{- printf "%s:%s" $repo (include "grantline.tag" .root) -}}
{{- end -}}

{{/* A Secret's name: the value if set, else <fullname>-<suffix>; call with (list $ value suffix). */}}
{{- define "grantline.secretName" -}}
{{- $root := index . 0 -}}
{{- index . 1 | default (printf "%s-%s" (include "grantline.fullname" $root) (index . 2)) -}}
{{- end -}}

{{/*
The catalogue, integrations, the notifier's directory and routing file, and the policies the chart
renders into its ConfigMap, as YAML {catalogue, integrations, directory, notifications, policies: {name:
text}}, after the demo defaults are applied.
*/}}
{{- define "grantline.files" -}}
{{- $f := .Values.files -}}
{{- $catalogue := $f.catalogue -}}
{{- $integrations := $f.integrations -}}
{{- $directory := $f.directory -}}
{{- $notifications := $f.notifications -}}
{{- $policies := deepCopy $f.policies -}}
{{- if $f.demo -}}
{{- $catalogue = $catalogue | default (.Files.Get "files/catalogue.yaml") -}}
{{- $integrations = $integrations | default (.Files.Get "files/integrations.yaml") -}}
{{- $directory = $directory | default (.Files.Get "files/directory.yaml") -}}
{{- $notifications = $notifications | default (.Files.Get "files/notifications.yaml") -}}
{{- if not $policies -}}
{{- range $path, $_ := .Files.Glob "files/policies/*.rego" -}}
{{- $_ := set $policies (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $catalogue -}}
{{- fail "files.catalogue is required (or files.demo: true, or files.existingConfigMap.name)" -}}
{{- end -}}
{{- if not $policies -}}
{{- fail "files.policies needs at least one .rego file (or files.demo: true, or files.existingConfigMap.name)" -}}
{{- end -}}
{{- if and (hasKey .Values.services "notifier") (not (and $directory $notifications)) -}}
{{- fail "files.directory and files.notifications are required by the notifier (or files.demo: true, or files.existingConfigMap.name)" -}}
{{- end -}}
{{- dict "catalogue" $catalogue "integrations" $integrations "directory" $directory "notifications" $notifications "policies" $policies | toYaml -}}
{{- end -}}

{{/* The ConfigMap holding the files, and which of them it has: {name, integrations, directory, policies: [names]}.
An existing ConfigMap has a directory when the notifier runs, which requires one. */}}
{{- define "grantline.filesSource" -}}
{{- $existing := .Values.files.existingConfigMap -}}
{{- if $existing.name -}}
{{- if not $existing.policies -}}
{{- fail "files.existingConfigMap.policies must list the .rego keys of the ConfigMap" -}}
{{- end -}}
{{- dict "name" $existing.name "integrations" $existing.integrations "directory" (hasKey .Values.services "notifier") "policies" $existing.policies | toYaml -}}
{{- else -}}
{{- $files := include "grantline.files" . | fromYaml -}}
{{- dict "name" (printf "%s-files" (include "grantline.fullname" .)) "integrations" (not (empty $files.integrations)) "directory" (not (empty $files.directory)) "policies" (keys $files.policies | sortAlpha) | toYaml -}}
{{- end -}}
{{- end -}}

{{/*
A checksum of everything the pods read from values, so that `helm upgrade` rolls them when a file
changes: the policy files are mounted with subPath (see the Deployment), which never sees updates.
*/}}
{{- define "grantline.configChecksum" -}}
{{- $in := dict "files" .Values.files "webhooks" .Values.targets.webhooks.config -}}
{{- if not .Values.files.existingConfigMap.name -}}
{{- $_ := set $in "rendered" (include "grantline.files" .) -}}
{{- end -}}
{{- toJson $in | sha256sum -}}
{{- end -}}

{{/*
NetworkPolicy egress rules from a list of {to, ports}, leaving out those with no peers: a rule without
"to" would allow every destination.
*/}}
{{- define "grantline.egress" -}}
{{- $rules := list -}}
{{- range . -}}
{{- if .to -}}
{{- $rules = append $rules (dict "to" .to "ports" .ports) -}}
{{- end -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}

{{/* GRANTLINE_PG_ROLES from a map of entitlement to role: "entitlement=role,...", sorted. */}}
{{- define "grantline.pgRoles" -}}
{{- $pairs := list -}}
{{- range $entitlement, $role := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $entitlement $role) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/*
The services the console calls: every other one with an API, as {name: port}. Each must have its
Service, which is how the console reaches it.
*/}}
{{- define "grantline.consoleUpstreams" -}}
{{- $needs := include "grantline.needs" . | fromYaml -}}
{{- $up := dict -}}
{{- range $name, $svc := .Values.services -}}
{{- if and (get $needs $name).api (not (get $needs $name).callsAPIs) (not (get $needs $name).notifies) -}}
{{- if not $svc.service.enabled -}}
{{- fail (printf "services.%s.service.enabled: the console reaches %s through its Service" $name $name) -}}
{{- end -}}
{{- $_ := set $up $name $svc.port -}}
{{- end -}}
{{- end -}}
{{- toYaml $up -}}
{{- end -}}

{{/* Names and labels shared by every object. */}}
{{- define "ticketflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ticketflow.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ticketflow.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ticketflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ticketflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Environment variable carrying a provider's API key: TICKETFLOW_KEY_<NAME>. */}}
{{- define "ticketflow.sinkEnv" -}}
{{- printf "TICKETFLOW_SINK_%s" (. | upper | replace "-" "_" | replace "." "_") -}}
{{- end -}}

{{- define "ticketflow.keyEnv" -}}
{{- printf "TICKETFLOW_KEY_%s" (. | upper | replace "-" "_" | replace "." "_") -}}
{{- end -}}

{{/*
The roles: one Deployment each. Every entry: name (object suffix), role (component label),
args, topic and group (for KEDA), scaling and resources.
*/}}
{{- define "ticketflow.roles" -}}
{{- $v := .Values -}}
{{- $roles := list -}}
{{- $roles = append $roles (dict "name" "intake" "role" "intake" "args" (list "run" "intake") "topic" $v.kafka.topics.inbound "group" $v.kafka.consumerGroups.intake "spec" $v.intake) -}}
{{- range $v.tiers -}}
{{- $roles = append $roles (dict "name" (printf "tier-%s" .name) "role" "tier" "tier" .name "args" (list "run" "tier" "--tier" .name) "topic" (printf "%s%s" $v.kafka.topics.tierPrefix .name) "group" (printf "%s%s" $v.kafka.consumerGroups.tierPrefix .name) "spec" .) -}}
{{- end -}}
{{- $roles = append $roles (dict "name" "results" "role" "results" "args" (list "run" "results") "topic" $v.kafka.topics.results "group" $v.kafka.consumerGroups.results "spec" $v.results) -}}
{{- $sampled := gt (float64 (default 0 $v.shadow.sample)) 0.0 -}}
{{- range $category, $share := (default (dict) $v.shadow.sampleByCategory) -}}
{{- if gt (float64 $share) 0.0 }}{{ $sampled = true }}{{ end -}}
{{- end -}}
{{- if $sampled -}}
{{- $roles = append $roles (dict "name" "shadow" "role" "shadow" "args" (list "run" "shadow") "topic" $v.kafka.topics.shadow "group" $v.kafka.consumerGroups.shadow "spec" $v.shadow) -}}
{{- end -}}
{{- if $v.feedback.enabled -}}
{{- $roles = append $roles (dict "name" "feedback" "role" "feedback" "args" (list "run" "feedback") "topic" $v.kafka.topics.feedback "group" $v.kafka.consumerGroups.feedback "spec" $v.feedback) -}}
{{- end -}}
{{- toJson $roles -}}
{{- end -}}

{{/* librdkafka properties: the pass-through map plus the SASL/TLS settings, as one JSON map. */}}
{{- define "ticketflow.kafkaProperties" -}}
{{- $k := .Values.kafka -}}
{{- $props := dict -}}
{{- range $name, $value := $k.properties -}}
{{- $_ := set $props $name (toString $value) -}}
{{- end -}}
{{- if and $k.sasl.enabled $k.tls.enabled -}}
{{- $_ := set $props "security.protocol" "SASL_SSL" -}}
{{- else if $k.sasl.enabled -}}
{{- $_ := set $props "security.protocol" "SASL_PLAINTEXT" -}}
{{- else if $k.tls.enabled -}}
{{- $_ := set $props "security.protocol" "SSL" -}}
{{- end -}}
{{- if $k.sasl.enabled -}}
{{- $_ := set $props "sasl.mechanisms" $k.sasl.mechanism -}}
{{- $_ := set $props "sasl.username" $k.sasl.username -}}
{{- $_ := set $props "sasl.password" "${TICKETFLOW_KAFKA_SASL_PASSWORD}" -}}
{{- end -}}
{{- if and $k.tls.enabled $k.tls.caSecret.name -}}
{{- $_ := set $props "ssl.ca.location" (printf "/etc/ticketflow/kafka-ca/%s" $k.tls.caSecret.key) -}}
{{- end -}}
{{- toJson $props -}}
{{- end -}}

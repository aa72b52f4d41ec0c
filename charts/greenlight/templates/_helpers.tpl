{{/* Names, labels and shared fragments of the greenlight chart. */}}

{{- define "greenlight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name; every object is named from it (e.g. greenlight-webhook). */}}
{{- define "greenlight.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else if contains (include "greenlight.name" .) .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "greenlight.name" .) | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "greenlight.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "greenlight.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: greenlight
{{- end }}

{{/* Selector labels of one component: include with (list $ "webhook"). */}}
{{- define "greenlight.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "greenlight.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "greenlight.componentLabels" -}}
{{ include "greenlight.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "greenlight.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{- define "greenlight.webhookName" -}}{{ include "greenlight.fullname" . }}-webhook{{- end }}
{{- define "greenlight.reconcilerName" -}}{{ include "greenlight.fullname" . }}-reconciler{{- end }}
{{- define "greenlight.uninstallName" -}}{{ include "greenlight.fullname" . }}-uninstall{{- end }}
{{- define "greenlight.tlsSecret" -}}{{ include "greenlight.fullname" . }}-webhook-tls{{- end }}
{{- define "greenlight.configName" -}}{{ include "greenlight.fullname" . }}-config{{- end }}
{{- define "greenlight.leaseName" -}}{{ default (include "greenlight.reconcilerName" .) .Values.reconciler.leaseName }}{{- end }}
{{- define "greenlight.historyConfigMap" -}}{{ default (printf "%s-intensity-history" (include "greenlight.fullname" .)) .Values.reconciler.historyConfigMap }}{{- end }}

{{/* The Secret with provider credentials: the user's, or the chart's when it has any. */}}
{{- define "greenlight.providerSecret" -}}
{{- if .Values.provider.existingSecret -}}
{{ .Values.provider.existingSecret }}
{{- else if or .Values.provider.electricityMapsApiKey .Values.provider.wattTimeUsername .Values.provider.wattTimePassword -}}
{{ include "greenlight.fullname" . }}-provider
{{- end -}}
{{- end }}

{{/* Service accounts allowed to write greenlight's output annotations on Jobs. */}}
{{- define "greenlight.trustedUsernames" -}}
{{- $ns := .Release.Namespace -}}
{{- list (printf "system:serviceaccount:%s:%s" $ns (include "greenlight.reconcilerName" .)) (printf "system:serviceaccount:%s:%s" $ns (include "greenlight.uninstallName" .)) | toJson -}}
{{- end }}

{{/* Namespaces the webhook configurations never match: config's list plus the release's own. */}}
{{- define "greenlight.excludedNamespaces" -}}
{{- $excluded := concat (.Values.config.webhook.excluded_namespaces | default list) (list .Release.Namespace) | uniq -}}
{{- toJson $excluded -}}
{{- end }}

{{/* One GREENLIGHT_* entry of the settings ConfigMap: (list NAME VALUE); null is left out. */}}
{{- define "greenlight.envEntry" -}}
{{- $value := index . 1 -}}
{{- if not (kindIs "invalid" $value) }}
{{ upper (index . 0) }}: {{ if or (kindIs "map" $value) (kindIs "slice" $value) }}{{ toJson $value | quote }}{{ else if and (kindIs "float64" $value) (eq $value (floor $value)) }}{{ $value | int64 | toString | quote }}{{ else }}{{ toString $value | quote }}{{ end }}
{{- end }}
{{- end }}

{{/* Every config value as its GREENLIGHT_* variable (see webhook/configref.py for the names). */}}
{{- define "greenlight.configEnv" -}}
{{- range $section, $fields := .Values.config }}
{{- range $name, $value := $fields }}
{{- if eq $section "providers" }}
{{- if and (kindIs "map" $value) (ne $name "zones") }}
{{- range $field, $fieldValue := $value }}
{{- include "greenlight.envEntry" (list (printf "GREENLIGHT_%s_%s" $name $field) $fieldValue) }}
{{- end }}
{{- else }}
{{- include "greenlight.envEntry" (list (printf "GREENLIGHT_%s" $name) $value) }}
{{- end }}
{{- else }}
{{- include "greenlight.envEntry" (list (printf "GREENLIGHT_%s__%s" $section $name) $value) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Environment shared by greenlight's containers. */}}
{{- define "greenlight.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: GREENLIGHT_PROVIDER
  value: {{ .Values.provider.name | quote }}
- name: GREENLIGHT_SERVER__NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: GREENLIGHT_SERVER__SERVICE
  value: {{ include "greenlight.webhookName" . | quote }}
- name: GREENLIGHT_WEBHOOK__TRUSTED_USERNAMES
  value: {{ include "greenlight.trustedUsernames" . | quote }}
- name: GREENLIGHT_PROVENANCE__KEYS_FILE
  value: /etc/greenlight/signing/keys
{{- if .Values.gpuProfiles }}
- name: GREENLIGHT_ENERGY__PROFILES_FILE
  value: /etc/greenlight/gpu-profiles.csv
{{- end }}
{{- if .Values.gpuCalibration }}
- name: GREENLIGHT_ENERGY__CALIBRATION_FILE
  value: /etc/greenlight/gpu-calibration.json
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "greenlight.envFrom" -}}
- configMapRef:
    name: {{ include "greenlight.configName" . }}
{{- with (include "greenlight.providerSecret" .) }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{/* Mounts shared by greenlight's containers: /tmp (writable) and the config files. */}}
{{- define "greenlight.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: config-files
  mountPath: /etc/greenlight
  readOnly: true
- name: signing-keys
  mountPath: /etc/greenlight/signing
  readOnly: true
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "greenlight.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
- name: config-files
  configMap:
    name: {{ include "greenlight.configName" . }}-files
- name: signing-keys
  secret:
    secretName: {{ include "greenlight.signingSecret" . }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "greenlight.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "greenlight.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* The Secret with the HMAC keys that sign greenlight's decisions (docs/security.md). */}}
{{- define "greenlight.signingSecret" -}}
{{- .Values.signing.existingSecret | default (printf "%s-signing" (include "greenlight.fullname" .)) -}}
{{- end }}

{{/*
Every workload kind greenlight knows: kind, API group, version, plural (the resource), in the
order of webhook.workloads.kinds.WORKLOADS (tests/unit/test_chart.py checks they are equal).
The one place the chart names them: webhook rules and RBAC are rendered from it.
*/}}
{{- define "greenlight.workloadKinds" -}}
- {kind: Job, group: batch, version: v1, plural: jobs}
- {kind: JobSet, group: jobset.x-k8s.io, version: v1alpha2, plural: jobsets}
- {kind: PyTorchJob, group: kubeflow.org, version: v1, plural: pytorchjobs}
- {kind: TFJob, group: kubeflow.org, version: v1, plural: tfjobs}
- {kind: MPIJob, group: kubeflow.org, version: v1, plural: mpijobs}
- {kind: XGBoostJob, group: kubeflow.org, version: v1, plural: xgboostjobs}
- {kind: MXJob, group: kubeflow.org, version: v1, plural: mxjobs}
- {kind: PaddleJob, group: kubeflow.org, version: v1, plural: paddlejobs}
- {kind: TrainJob, group: trainer.kubeflow.org, version: v1alpha1, plural: trainjobs}
- {kind: RayJob, group: ray.io, version: v1, plural: rayjobs}
{{- end }}

{{/* The kind table's rows for config.workloads.enabled, in the table's order (a JSON list). */}}
{{- define "greenlight.enabledWorkloads" -}}
{{- $enabled := .Values.config.workloads.enabled -}}
{{- $rows := list -}}
{{- range include "greenlight.workloadKinds" . | fromYamlArray -}}
{{- if has .kind $enabled }}{{ $rows = append $rows . }}{{ end -}}
{{- end -}}
{{- toJson $rows -}}
{{- end }}

{{/*
The enabled kinds grouped by (API group, version) in first-seen order, as {group, version,
plurals}: webhook.workloads.kinds.admission_rules's shape (a JSON list).
*/}}
{{- define "greenlight.workloadGroupVersions" -}}
{{- $order := list -}}
{{- $plurals := dict -}}
{{- range include "greenlight.enabledWorkloads" . | fromJsonArray -}}
{{- $key := printf "%s/%s" .group .version -}}
{{- if not (hasKey $plurals $key) }}{{ $order = append $order (dict "group" .group "version" .version) }}{{ end -}}
{{- $_ := set $plurals $key (append (get $plurals $key | default list) .plural) -}}
{{- end -}}
{{- $out := list -}}
{{- range $order -}}
{{- $out = append $out (dict "group" .group "version" .version "plurals" (get $plurals (printf "%s/%s" .group .version))) -}}
{{- end -}}
{{- toJson $out -}}
{{- end }}

{{/* Admission rules on the enabled kinds for the operations given: (list . (list "CREATE")). */}}
{{- define "greenlight.workloadRules" -}}
{{- $root := index . 0 -}}
{{- $operations := index . 1 -}}
{{- range include "greenlight.workloadGroupVersions" $root | fromJsonArray }}
- apiGroups: [{{ .group | quote }}]
  apiVersions: [{{ .version | quote }}]
  resources: {{ toJson .plurals }}
  operations: {{ toJson $operations }}
  scope: Namespaced
{{- end }}
{{- end }}

{{/*
RBAC rules granting verbs on the enabled kinds, one per API group (RBAC names no version):
(list . (list "get" "list")).
*/}}
{{- define "greenlight.workloadRBAC" -}}
{{- $root := index . 0 -}}
{{- $verbs := index . 1 -}}
{{- $order := list -}}
{{- $plurals := dict -}}
{{- range include "greenlight.enabledWorkloads" $root | fromJsonArray -}}
{{- if not (hasKey $plurals .group) }}{{ $order = append $order .group }}{{ end -}}
{{- $_ := set $plurals .group (append (get $plurals .group | default list) .plural) -}}
{{- end -}}
{{- range $order }}
- apiGroups: [{{ . | quote }}]
  resources: {{ toJson (get $plurals .) }}
  verbs: {{ toJson $verbs }}
{{- end }}
{{- end }}

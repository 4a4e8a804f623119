{{/*
Ray clusters in tenant namespaces. "meow.rayJob" renders exactly what the control plane's kuberay
backend (meow_platform.backends.kuberay.build_rayjob) submits for one job, from the same settings
("meow.kuberaySettings"); tests/deploy compares the two. The probing RayService reuses its pods.
*/}}

{{/* A Ray pod template: `.container`, `.labels`, `.resources`, `.ports` (a list of {name, containerPort}), `.settings`. */}}
{{- define "meow.rayPodTemplate" -}}
metadata:
  labels:
    {{- toYaml .labels | nindent 4 }}
spec:
  # Ray pods never talk to the Kubernetes API.
  automountServiceAccountToken: false
  {{- with .settings.artifacts_claim }}
  securityContext:
    fsGroup: {{ $.settings.artifacts_fs_group }}
  volumes:
    - name: artifacts
      persistentVolumeClaim:
        claimName: {{ . }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ .settings.image }}
      imagePullPolicy: {{ .settings.image_pull_policy }}
      resources:
        requests:
          {{- toYaml .resources | nindent 10 }}
        limits:
          {{- toYaml .resources | nindent 10 }}
      ports:
        {{- toYaml .ports | nindent 8 }}
      securityContext:
        {{- include "meow.restrictedSecurityContext" . | nindent 8 }}
      {{- with .settings.env_secret }}
      envFrom:
        - secretRef:
            name: {{ . }}
      {{- end }}
      {{- if .settings.artifacts_claim }}
      # Every pod: the driver on the head writes status and report, workers write models.
      volumeMounts:
        - name: artifacts
          mountPath: {{ .settings.artifacts_mount_path }}
      {{- end }}
{{- end }}

{{/* Ports of a Ray head, in the backend's order. */}}
{{- define "meow.headPorts" -}}
- {name: gcs-server, containerPort: 6379}
- {name: dashboard, containerPort: 8265}
- {name: client, containerPort: 10001}
- {name: metrics, containerPort: 8080}
{{- end }}

{{/* A CPU count per worker as a quantity: whole CPUs as an integer, else millicores rounded up. */}}
{{- define "meow.cpuQuantity" -}}
{{- if eq (floor .) (float64 .) }}{{ int64 . }}{{ else }}{{ ceil (mulf . 1000) | int64 }}m{{ end }}
{{- end }}

{{/*
The RayJob of one job. Inputs: `.settings` (meow.kuberaySettings), `.tenant`, `.id`, `.spec` (text),
`.runDir`, `.workers`, `.cpus`, `.gpus`, `.jobEnv` (dict).
*/}}
{{- define "meow.rayJob" -}}
{{- $name := printf "meow-%s" .id }}
{{- $labels := dict
  "app.kubernetes.io/name" "meow"
  "app.kubernetes.io/component" "job"
  "app.kubernetes.io/managed-by" "meow-platform"
  "meow.dev/tenant" .tenant.name
  "meow.dev/job-id" .id }}
{{- $workers := max 1 .workers | int }}
{{- $workerResources := dict "cpu" (include "meow.cpuQuantity" (divf .cpus $workers)) "memory" .settings.worker_memory }}
{{- if gt (float64 .gpus) 0.0 }}
{{- $_ := set $workerResources "nvidia.com/gpu" (ceil (divf .gpus $workers) | int64 | toString) }}
{{- end }}
{{- if not (regexMatch "^[A-Za-z0-9@%+=:,./_-]+$" .runDir) }}
{{- fail (printf "run directory %q needs shell quoting; keep bucket and prefix to [A-Za-z0-9@%%+=:,./_-]" .runDir) }}
{{- end }}
{{- $env := merge (dict "MEOW_TENANT" .tenant.name "MEOW_JOB_ID" .id "MEOW_SPEC_B64" (b64enc .spec)) .jobEnv }}
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: {{ $name }}
  namespace: {{ .tenant.namespace }}
  labels:
    {{- toYaml $labels | nindent 4 }}
    {{- with .settings.queue_name }}
    # Kueue admits the job by flipping spec.suspend; never set it here.
    kueue.x-k8s.io/queue-name: {{ . }}
    {{- end }}
spec:
  entrypoint: python -m meow_platform.jobrun --run-dir {{ .runDir }}
  # The spec travels base64-encoded in the job's environment, never in a shell command.
  runtimeEnvYAML: |
    {{- toYaml (dict "env_vars" $env) | nindent 4 }}
  jobId: {{ $name }}
  metadata:
    tenant: {{ .tenant.name }}
    job_id: {{ .id | quote }}
  # A submitter pod runs `ray job submit` and follows the logs (the control plane reads them).
  submissionMode: K8sJobMode
  shutdownAfterJobFinishes: true
  ttlSecondsAfterFinished: {{ .settings.ttl_seconds_after_finished }}
  activeDeadlineSeconds: {{ .settings.active_deadline_seconds }}
  backoffLimit: {{ .settings.backoff_limit }}
  rayClusterSpec:
    rayVersion: {{ .settings.ray_version | quote }}
    enableInTreeAutoscaling: false
    authOptions:
      mode: token
    headGroupSpec:
      rayStartParams:
        # The head hosts the driver only; stages' actors and trainers go to the workers.
        num-cpus: "0"
        metrics-export-port: "8080"
      template:
        {{- include "meow.rayPodTemplate" (dict "container" "ray-head" "labels" $labels "settings" .settings
              "resources" (dict "cpu" .settings.head_cpu "memory" .settings.head_memory)
              "ports" (include "meow.headPorts" . | fromYamlArray)) | nindent 8 }}
    workerGroupSpecs:
      - groupName: workers
        replicas: {{ $workers }}
        minReplicas: {{ $workers }}
        maxReplicas: {{ $workers }}
        rayStartParams:
          metrics-export-port: "8080"
        template:
          {{- include "meow.rayPodTemplate" (dict "container" "ray-worker" "labels" $labels "settings" .settings
                "resources" $workerResources "ports" (list (dict "name" "metrics" "containerPort" 8080))) | nindent 10 }}
{{- end }}

{{/* Resources of each probing RayService worker (requests and limits alike, as for jobs). */}}
{{- define "meow.probeWorkerResources" -}}
cpu: {{ .Values.probe.worker.cpu | quote }}
memory: {{ .Values.probe.worker.memory | quote }}
{{- if .Values.probe.worker.gpus }}
nvidia.com/gpu: {{ .Values.probe.worker.gpus | quote }}
{{- end }}
{{- end }}

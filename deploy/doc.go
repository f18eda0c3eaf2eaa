// Package deploy owns pgwarden's deployment files and their checks; it has
// no code of its own, only tests (go test ./deploy/, part of make test):
//
//   - compose/: the Docker Compose quick-start (PostgreSQL + pgvector, a
//     PostgreSQL shared store, two gateways built from the root Dockerfile,
//     HAProxy in TCP mode with /readyz health checks). The test parses
//     compose.yaml and haproxy.cfg, checks their structure and that every
//     mounted file exists, and parses the gateways' pgwarden.yaml with
//     config.Parse in the environment Compose gives them. Compose itself is
//     not run (no Docker in the test environment).
//   - helm/pgwarden/: the Helm chart. The test runs helm lint and helm
//     template (default values, serviceMonitor.enabled, secret values, an
//     existing Secret), decodes every rendered object strictly into the
//     Kubernetes API types of k8s.io/api (an unknown field fails), and checks
//     what the chart promises: replicas, probes, selectors, security
//     context, no secret in the ConfigMap, a ConfigMap config.Parse accepts.
//   - kubernetes/pgwarden.yaml: the chart rendered with its default values
//     by scripts/render-manifest.sh (make manifest); the test fails when the
//     committed file differs from a fresh render.
//
// helm is .tools/bin/helm (scripts/helm-tool.sh, run by make setup) or the
// one on PATH; without it the chart tests skip, except under CI=true, where
// they fail. docs/deploy.md is the operator's guide to all of it.
package deploy

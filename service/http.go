package service

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// Handler serves the service's operator API, JSON in and out:
//
//	GET  /v1/plans                    every plan's status
//	GET  /v1/plans/{plan}             one plan
//	POST /v1/plans/{plan}/pause       pause a plan
//	POST /v1/plans/{plan}/resume      resume it
//	GET  /v1/pods                     every pod's status
//	GET  /v1/pods/{pod}               one pod
//	POST /v1/pods/{pod}/restart       restart the pod in place
//	POST /v1/pods/{pod}/replace       move it to a new agent, new volumes
//	POST /v1/uninstall                uninstall the service
//
// A pod waiting to be relaunched after its task failed (Backoff) shows
// its consecutive "failures" and "backoff_until" (RFC 3339) in its
// status, and its plan steps the status DELAYED with the same
// "backoff_until".
//
// Unknown plans and pods are 404, commands refused while uninstalling 409,
// a spec change refused 409, a service not running 503. Commands answer
// 202 with {"ok": true}: the work proceeds in the plans.
//
// A standby (RunElected, another instance leading) shows no state of its
// own, which would be stale: it answers 307 with Location the same path
// on the leader's API and {"error": ..., "leader": "<its API>"}, as a
// standby Mesos master redirects to the leader, or 503 with the error
// while it knows no leader (no detector, an election in progress, or
// itself elected and taking over).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	get := func(f func(r *http.Request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			v, err := f(r)
			s.reply(w, r, http.StatusOK, v, err)
		}
	}
	post := func(f func(ctx context.Context, r *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s.reply(w, r, http.StatusAccepted, map[string]bool{"ok": true}, f(r.Context(), r))
		}
	}
	mux.Handle("GET /v1/plans", get(func(r *http.Request) (any, error) { return s.Plans(r.Context()) }))
	mux.Handle("GET /v1/plans/{plan}", get(func(r *http.Request) (any, error) { return s.Plan(r.Context(), r.PathValue("plan")) }))
	mux.Handle("POST /v1/plans/{plan}/pause", post(func(ctx context.Context, r *http.Request) error { return s.PausePlan(ctx, r.PathValue("plan")) }))
	mux.Handle("POST /v1/plans/{plan}/resume", post(func(ctx context.Context, r *http.Request) error { return s.ResumePlan(ctx, r.PathValue("plan")) }))
	mux.Handle("GET /v1/pods", get(func(r *http.Request) (any, error) { return s.Pods(r.Context()) }))
	mux.Handle("GET /v1/pods/{pod}", get(func(r *http.Request) (any, error) { return s.Pod(r.Context(), r.PathValue("pod")) }))
	mux.Handle("POST /v1/pods/{pod}/restart", post(func(ctx context.Context, r *http.Request) error { return s.RestartPod(ctx, r.PathValue("pod")) }))
	mux.Handle("POST /v1/pods/{pod}/replace", post(func(ctx context.Context, r *http.Request) error { return s.ReplacePod(ctx, r.PathValue("pod")) }))
	mux.Handle("POST /v1/uninstall", post(func(ctx context.Context, _ *http.Request) error { return s.Uninstall(ctx) }))
	return mux
}

func (s *Service) reply(w http.ResponseWriter, r *http.Request, code int, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		body := map[string]string{"error": err.Error()}
		switch {
		case errors.Is(err, ErrUnknownPod), errors.Is(err, ErrUnknownPlan):
			code = http.StatusNotFound
		case errors.Is(err, ErrUninstalling), errors.Is(err, ErrSpecChange):
			code = http.StatusConflict
		case errors.Is(err, ErrNotLeader):
			code = http.StatusServiceUnavailable
			if api := s.LeaderAPI(); api != "" {
				body["leader"] = api
				w.Header().Set("Location", api+r.URL.RequestURI())
				code = http.StatusTemporaryRedirect
			}
		case errors.Is(err, ErrNotRunning):
			code = http.StatusServiceUnavailable
		default:
			code = http.StatusInternalServerError
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

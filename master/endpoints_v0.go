package master

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/httpapi"
)

// routeV0 serves the operator endpoints of Mesos's master that predate
// the v1 operator API, which scripts and tools still call; each is the
// operator call it maps to (authorized, and answered, as that call is),
// in the read-write realm as Mesos routes them:
//
//	POST   /teardown         frameworkId=<id>                       TEARDOWN (200)
//	POST   /reserve          slaveId=<id>&resources=<JSON array>    RESERVE_RESOURCES (202)
//	POST   /unreserve        slaveId=<id>&resources=<JSON array>    UNRESERVE_RESOURCES (202)
//	POST   /create-volumes   slaveId=<id>&volumes=<JSON array>      CREATE_VOLUMES (202)
//	POST   /destroy-volumes  slaveId=<id>&volumes=<JSON array>      DESTROY_VOLUMES (202)
//	GET    /quota            the QuotaStatus                        GET_QUOTA
//	POST   /quota            a QuotaRequest                         SET_QUOTA (200)
//	DELETE /quota/<role>                                            REMOVE_QUOTA (200)
//	GET    /weights          a JSON array of WeightInfo             GET_WEIGHTS
//	PUT    /weights          a JSON array of WeightInfo             UPDATE_WEIGHTS (200)
//
// (the POST bodies form-encoded, as Mesos reads them), each also under
// "/master".
func (m *Master) routeV0(both func(string, http.Handler), readWrite func(http.Handler) http.Handler) {
	route := func(path string, h http.HandlerFunc) { both(path, readWrite(m.leaderOnly(h))) }
	route("/teardown", m.serveTeardown)
	route("/reserve", m.serveOperation(masterpb.Call_RESERVE_RESOURCES, "resources"))
	route("/unreserve", m.serveOperation(masterpb.Call_UNRESERVE_RESOURCES, "resources"))
	route("/create-volumes", m.serveOperation(masterpb.Call_CREATE_VOLUMES, "volumes"))
	route("/destroy-volumes", m.serveOperation(masterpb.Call_DESTROY_VOLUMES, "volumes"))
	route("/quota", m.serveQuota)
	route("/quota/", m.serveQuota)
	route("/weights", m.serveWeights)
}

// methodOnly answers 405 unless r's method is one of methods.
func methodOnly(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "expecting one of { '%s' }, but received '%s'", strings.Join(methods, "', '"), r.Method))
	return false
}

// formBody reads a form-encoded POST body.
func formBody(r *http.Request) (url.Values, error) {
	b, err := readMaintenanceBody(r)
	if err != nil {
		return nil, err
	}
	v, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Unable to decode query string: %v", err)
	}
	return v, nil
}

// answerV0 runs call and answers as its operator call is answered, the
// body (if any) made by body.
func (m *Master) answerV0(w http.ResponseWriter, r *http.Request, call *masterpb.Call, body func(*masterpb.Response) ([]byte, error)) {
	resp, err := m.OperatorCall(r.Context(), call)
	if err != nil {
		httpapi.WriteError(w, httpError(err))
		return
	}
	if resp == nil || body == nil {
		if answersAccepted(call.GetType()) {
			w.WriteHeader(http.StatusAccepted)
		} else {
			w.WriteHeader(http.StatusOK)
		}
		return
	}
	b, err := body(resp)
	if err != nil {
		httpapi.WriteError(w, fmt.Errorf("encoding the answer: %w", err))
		return
	}
	writeBody(w, r, codec.MediaTypeJSON, b)
}

func (m *Master) serveTeardown(w http.ResponseWriter, r *http.Request) {
	if !methodOnly(w, r, http.MethodPost) {
		return
	}
	form, err := formBody(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	id := form.Get("frameworkId")
	if id == "" {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Missing 'frameworkId' query parameter in the request body"))
		return
	}
	m.answerV0(w, r, &masterpb.Call{Type: masterpb.Call_TEARDOWN.Enum(),
		Teardown: &masterpb.Call_Teardown{FrameworkID: mesospb.FrameworkID{Value: id}}}, nil)
}

// serveOperation serves /reserve, /unreserve, /create-volumes and
// /destroy-volumes: slaveId and a JSON array of resources under key.
func (m *Master) serveOperation(typ masterpb.Call_Type, key string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !methodOnly(w, r, http.MethodPost) {
			return
		}
		form, err := formBody(r)
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		agentID := form.Get("slaveId")
		if agentID == "" {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Missing 'slaveId' query parameter in the request body"))
			return
		}
		if !form.Has(key) {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Missing '%s' query parameter in the request body", key))
			return
		}
		var raw []json.RawMessage
		if err := json.Unmarshal([]byte(form.Get(key)), &raw); err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Error parsing '%s' query parameter in the request body: %v", key, err))
			return
		}
		rs := make([]mesospb.Resource, len(raw))
		for i, b := range raw {
			if err := codec.UnmarshalJSON(b, &rs[i]); err != nil {
				httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Error parsing '%s' query parameter in the request body: %v", key, err))
				return
			}
		}
		id := mesospb.AgentID{Value: agentID}
		call := &masterpb.Call{Type: typ.Enum()}
		switch typ {
		case masterpb.Call_RESERVE_RESOURCES:
			call.ReserveResources = &masterpb.Call_ReserveResources{AgentID: id, Resources: rs}
		case masterpb.Call_UNRESERVE_RESOURCES:
			call.UnreserveResources = &masterpb.Call_UnreserveResources{AgentID: id, Resources: rs}
		case masterpb.Call_CREATE_VOLUMES:
			call.CreateVolumes = &masterpb.Call_CreateVolumes{AgentID: id, Volumes: rs}
		default:
			call.DestroyVolumes = &masterpb.Call_DestroyVolumes{AgentID: id, Volumes: rs}
		}
		m.answerV0(w, r, call, nil)
	}
}

func (m *Master) serveQuota(w http.ResponseWriter, r *http.Request) {
	if !methodOnly(w, r, http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete) {
		return
	}
	role := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/master"), "/quota")
	role = strings.TrimPrefix(role, "/")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		m.answerV0(w, r, &masterpb.Call{Type: masterpb.Call_GET_QUOTA.Enum()}, func(resp *masterpb.Response) ([]byte, error) {
			return codec.MarshalJSON(&resp.GetQuota.Status)
		})
	case http.MethodPost:
		b, err := readMaintenanceBody(r)
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		var req masterpb.QuotaRequest
		if err := codec.UnmarshalJSON(b, &req); err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Failed to parse set quota request JSON: %v", err))
			return
		}
		m.answerV0(w, r, &masterpb.Call{Type: masterpb.Call_SET_QUOTA.Enum(), SetQuota: &masterpb.Call_SetQuota{QuotaRequest: req}}, nil)
	case http.MethodDelete:
		if role == "" {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Failed to parse remove quota request for path '%s': expected 3 tokens", r.URL.Path))
			return
		}
		m.answerV0(w, r, &masterpb.Call{Type: masterpb.Call_REMOVE_QUOTA.Enum(), RemoveQuota: &masterpb.Call_RemoveQuota{Role: role}}, nil)
	}
}

func (m *Master) serveWeights(w http.ResponseWriter, r *http.Request) {
	if !methodOnly(w, r, http.MethodGet, http.MethodHead, http.MethodPut) {
		return
	}
	if r.Method != http.MethodPut {
		m.answerV0(w, r, &masterpb.Call{Type: masterpb.Call_GET_WEIGHTS.Enum()}, func(resp *masterpb.Response) ([]byte, error) {
			var buf bytes.Buffer
			buf.WriteByte('[')
			for i := range resp.GetWeights.WeightInfos {
				b, err := codec.MarshalJSON(&resp.GetWeights.WeightInfos[i])
				if err != nil {
					return nil, err
				}
				if i > 0 {
					buf.WriteByte(',')
				}
				buf.Write(b)
			}
			buf.WriteByte(']')
			return buf.Bytes(), nil
		})
		return
	}
	b, err := readMaintenanceBody(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Failed to parse update weights request JSON: %v", err))
		return
	}
	infos := make([]mesospb.WeightInfo, len(raw))
	for i, b := range raw {
		if err := codec.UnmarshalJSON(b, &infos[i]); err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "Failed to parse update weights request JSON: %v", err))
			return
		}
	}
	m.answerV0(w, r, &masterpb.Call{Type: masterpb.Call_UPDATE_WEIGHTS.Enum(),
		UpdateWeights: &masterpb.Call_UpdateWeights{WeightInfos: infos}}, nil)
}

package master

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/httpapi"
)

// maxMaintenanceBody bounds the body of the maintenance endpoints.
const maxMaintenanceBody = 4 << 20

// routeMaintenance serves Mesos's maintenance endpoints, which predate the
// v1 operator calls and do the same (maintenance.go), in the same JSON:
//
//	GET  /maintenance/schedule  the schedule (GET_MAINTENANCE_SCHEDULE)
//	POST /maintenance/schedule  a schedule replaces it (UPDATE_MAINTENANCE_SCHEDULE)
//	GET  /maintenance/status    the machines' modes and answers (GET_MAINTENANCE_STATUS)
//	POST /machine/down          a JSON array of MachineIDs goes DOWN (START_MAINTENANCE)
//	POST /machine/up            a JSON array of MachineIDs comes back UP (STOP_MAINTENANCE)
//
// each at both paths (handle adds the "/master" prefix). A change answers
// 200 with no body, a refused one 400 with the reason; only the leader
// answers. As Mesos routes them, /maintenance/status is in the read-only
// realm (readOnly wraps it) and the others in the read-write one; each
// call is authorized as its operator call is (auth.go).
func (m *Master) routeMaintenance(handle func(path string, h http.Handler), readOnly, readWrite func(http.Handler) http.Handler) {
	handle("/maintenance/schedule", readWrite(m.leaderOnly(http.HandlerFunc(m.serveMaintenanceSchedule))))
	handle("/maintenance/status", readOnly(m.leaderOnly(getOnly(m.serveMaintenanceStatus))))
	handle("/machine/down", readWrite(m.leaderOnly(http.HandlerFunc(m.serveMachines(masterpb.Call_START_MAINTENANCE)))))
	handle("/machine/up", readWrite(m.leaderOnly(http.HandlerFunc(m.serveMachines(masterpb.Call_STOP_MAINTENANCE)))))
}

func (m *Master) serveMaintenanceSchedule(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		m.answerMaintenance(w, r, &masterpb.Call{Type: masterpb.Call_GET_MAINTENANCE_SCHEDULE.Enum()})
	case http.MethodPost:
		b, err := readMaintenanceBody(r)
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		var s masterpb.Schedule
		if err := codec.UnmarshalJSON(b, &s); err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "failed to parse the schedule: %v", err))
			return
		}
		m.answerMaintenance(w, r, &masterpb.Call{
			Type:                      masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE.Enum(),
			UpdateMaintenanceSchedule: &masterpb.Call_UpdateMaintenanceSchedule{Schedule: s},
		})
	default:
		w.Header().Set("Allow", "GET, POST")
		httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "expecting a 'GET' or 'POST' request, received '%s'", r.Method))
	}
}

func (m *Master) serveMaintenanceStatus(w http.ResponseWriter, r *http.Request) {
	m.answerMaintenance(w, r, &masterpb.Call{Type: masterpb.Call_GET_MAINTENANCE_STATUS.Enum()})
}

// serveMachines is POST /machine/down or /machine/up: a JSON array of
// MachineIDs.
func (m *Master) serveMachines(typ masterpb.Call_Type) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "expecting a 'POST' request, received '%s'", r.Method))
			return
		}
		b, err := readMaintenanceBody(r)
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		ids, err := parseMachineIDs(b)
		if err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "failed to parse the machines: %v", err))
			return
		}
		call := &masterpb.Call{Type: typ.Enum()}
		if typ == masterpb.Call_START_MAINTENANCE {
			call.StartMaintenance = &masterpb.Call_StartMaintenance{Machines: ids}
		} else {
			call.StopMaintenance = &masterpb.Call_StopMaintenance{Machines: ids}
		}
		m.answerMaintenance(w, r, call)
	}
}

// answerMaintenance runs call on the core and answers with the schedule or
// the status it returns as JSON, or 200 with no body.
func (m *Master) answerMaintenance(w http.ResponseWriter, r *http.Request, call *masterpb.Call) {
	resp, err := m.OperatorCall(r.Context(), call)
	if err != nil {
		httpapi.WriteError(w, httpError(err))
		return
	}
	var b []byte
	switch {
	case resp.GetGetMaintenanceSchedule() != nil:
		b, err = codec.MarshalJSON(&resp.GetMaintenanceSchedule.Schedule)
	case resp.GetGetMaintenanceStatus() != nil:
		b, err = codec.MarshalJSON(&resp.GetMaintenanceStatus.Status)
	default:
		w.WriteHeader(http.StatusOK)
		return
	}
	if err != nil {
		httpapi.WriteError(w, fmt.Errorf("encoding the answer: %w", err))
		return
	}
	writeBody(w, r, codec.MediaTypeJSON, b)
}

func readMaintenanceBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxMaintenanceBody+1))
	switch {
	case err != nil:
		return nil, httpapi.Errorf(http.StatusBadRequest, "reading the body: %v", err)
	case len(b) > maxMaintenanceBody:
		return nil, httpapi.Errorf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", maxMaintenanceBody)
	}
	return b, nil
}

// parseMachineIDs reads a JSON array of MachineIDs.
func parseMachineIDs(b []byte) ([]mesospb.MachineID, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	ids := make([]mesospb.MachineID, len(raw))
	for i, r := range raw {
		if err := codec.UnmarshalJSON(r, &ids[i]); err != nil {
			return nil, fmt.Errorf("machine %d: %w", i, err)
		}
	}
	return ids, nil
}

package resources

import (
	"encoding/json"
	"fmt"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// parseJSON reads the JSON form of Parse: an array of mesos.v1 Resource
// messages, with the command-line restrictions of Mesos's agent.
func parseJSON(data []byte) (Resources, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		return nil, fmt.Errorf("%w: JSON resources: %w", ErrInvalid, err)
	}
	ps := make([]mesospb.Resource, len(elems))
	for i, e := range elems {
		if err := codec.UnmarshalJSON(e, &ps[i]); err != nil {
			return nil, fmt.Errorf("%w: JSON resource %d: %w", ErrInvalid, i, err)
		}
	}
	rs, err := FromProto(ps)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		switch {
		case r.IsPersistentVolume():
			return nil, invalidf(r.Name, "persistent volumes cannot be declared in agent resources")
		case r.Revocable:
			return nil, invalidf(r.Name, "revocable resources cannot be declared in agent resources")
		case r.IsDynamicallyReserved():
			return nil, invalidf(r.Name, "dynamic reservations cannot be declared in agent resources")
		}
	}
	return rs, nil
}

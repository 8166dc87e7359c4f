package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// ErrNoMasterAddress: a MasterInfo that says nowhere the master can be
// reached.
var ErrNoMasterAddress = errors.New("codec: MasterInfo has no address")

// ParseMasterInfo reads a MasterInfo as Mesos masters publish it in
// ZooKeeper (the JSON of their "json.info_" znodes) and Apron's masters
// publish it in an election: JSON with Mesos's field names. Data that is not
// a MasterInfo with an address (an empty node, another application's
// znode, garbage) is an error, so detectors can skip it.
func ParseMasterInfo(data []byte) (*mesospb.MasterInfo, error) {
	var info mesospb.MasterInfo
	if err := UnmarshalJSON(data, &info); err != nil {
		return nil, err
	}
	if info.ID == "" {
		return nil, fmt.Errorf("%w: 'id' is empty", ErrInvalid)
	}
	if _, err := MasterURL(&info); err != nil {
		return nil, err
	}
	return &info, nil
}

// MasterURL is the base URL ("http://10.0.0.2:5050") of the master info
// describes, found as Mesos's HTTP scheduler library finds it: address.ip
// and address.port, else the deprecated ip (an IPv4 address in network byte
// order read as a little-endian integer) and port, else the hostname.
func MasterURL(info *mesospb.MasterInfo) (string, error) {
	port := info.GetPort()
	if a := info.Address; a != nil && a.Port > 0 {
		port = uint32(a.Port)
	}
	if port == 0 || port > 65535 {
		return "", fmt.Errorf("%w: no port", ErrNoMasterAddress)
	}
	var host string
	switch a := info.Address; {
	case a != nil && a.GetIP() != "":
		host = a.GetIP()
	case info.IP != 0:
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], info.IP)
		host = netip.AddrFrom4(b).String()
	case a != nil && a.GetHostname() != "":
		host = a.GetHostname()
	default:
		host = info.GetHostname()
	}
	host = strings.TrimSpace(host)
	if host == "" || strings.ContainsAny(host, "/?#@ ") {
		return "", fmt.Errorf("%w: no usable host (%q)", ErrNoMasterAddress, host)
	}
	return "http://" + net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10)), nil
}

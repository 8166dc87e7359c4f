package main

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The master advertises the address it listens on; listening on every
// address, it advertises its hostname's address, as Mesos does.
func TestAdvertised(t *testing.T) {
	host, ip, port := advertised(&net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 5050}, "", "")
	assert.Equal(t, "10.0.0.2", host)
	assert.Equal(t, "10.0.0.2", ip)
	assert.Equal(t, uint32(5050), port)

	host, ip, _ = advertised(&net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 5050}, "m1.example", "192.168.0.9")
	assert.Equal(t, "m1.example", host)
	assert.Equal(t, "192.168.0.9", ip, "-advertise-ip wins")

	host, ip, _ = advertised(&net.TCPAddr{IP: net.IPv4zero, Port: 5050}, "localhost", "")
	assert.Equal(t, "localhost", host)
	assert.Equal(t, "127.0.0.1", ip, "localhost resolves to the loopback address")
	_, ip, _ = advertised(&net.TCPAddr{IP: net.IPv4zero, Port: 5050}, "", "")
	assert.NotEqual(t, "0.0.0.0", ip, "never the unspecified address")
	assert.NotEmpty(t, ip)
}

// -max-completed-* 0 keeps none; master.Config's 0 is the default.
func TestKeep(t *testing.T) {
	assert.Equal(t, -1, keep(0))
	assert.Equal(t, 50, keep(50))
}

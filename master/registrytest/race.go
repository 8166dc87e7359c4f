//go:build race

package registrytest

const raceEnabled = true

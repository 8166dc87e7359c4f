//go:build !linux

package agent

import (
	"errors"
	"runtime"
)

var errNoDetection = errors.New("detecting memory and disk needs Linux; set them in Config.Resources")

func onlineCPUs() int { return runtime.NumCPU() }

func totalMemory() (uint64, error) { return 0, errNoDetection }

func fsSize(path string) (uint64, error) { return 0, errNoDetection }

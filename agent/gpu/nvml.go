package gpu

import (
	"errors"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// nvmlLib is the part of NVML's library handle this package calls. Keeping it
// this small lets the tests substitute go-nvml's mock servers or a fake that
// fails on any call made after a failed Init, and keeps NVML out of every
// other package. nvml.Interface satisfies it.
type nvmlLib interface {
	Init() nvml.Return
	Shutdown() nvml.Return
	// Extensions gives LookupSymbol: calling a function that the loaded
	// driver does not export crashes the process (go-nvml links with
	// unresolved symbols), so newer entry points are probed first.
	Extensions() nvml.ExtendedInterface
	DeviceGetCount() (int, nvml.Return)
	DeviceGetHandleByIndex(index int) (nvml.Device, nvml.Return)
	EventSetCreate() (nvml.EventSet, nvml.Return)
}

// nvmlDevice is the part of an NVML device handle this package calls;
// nvml.Device satisfies it.
type nvmlDevice interface {
	GetIndex() (int, nvml.Return)
	GetUUID() (string, nvml.Return)
	GetName() (string, nvml.Return)
	GetUtilizationRates() (nvml.Utilization, nvml.Return)
	GetMemoryInfo_v2() (nvml.Memory_v2, nvml.Return)
	GetMemoryInfo() (nvml.Memory, nvml.Return)
	GetTemperature(sensor nvml.TemperatureSensors) (uint32, nvml.Return)
	GetPowerUsage() (uint32, nvml.Return)
	GetEnforcedPowerLimit() (uint32, nvml.Return)
	GetTotalEccErrors(errorType nvml.MemoryErrorType, counter nvml.EccCounterType) (uint64, nvml.Return)
	GetMigMode() (int, int, nvml.Return)
	GetMaxMigDeviceCount() (int, nvml.Return)
	GetMigDeviceHandleByIndex(index int) (nvml.Device, nvml.Return)
	GetSupportedEventTypes() (uint64, nvml.Return)
	RegisterEvents(eventTypes uint64, set nvml.EventSet) nvml.Return
}

var (
	_ nvmlLib    = nvml.Interface(nil)
	_ nvmlDevice = nvml.Device(nil)
)

// newNVML returns the real library. nvml.New only records the library name;
// the dlopen of libnvidia-ml.so.1 happens in Init, which answers
// ERROR_LIBRARY_NOT_FOUND when the library is absent.
func newNVML() nvmlLib { return nvml.New() }

// Symbols probed after Init before they are called.
const (
	symMemoryInfoV2 = "nvmlDeviceGetMemoryInfo_v2"
	symMigMode      = "nvmlDeviceGetMigMode"
)

// nvmlError turns an NVML return code into an error that says what was being
// done; nil on SUCCESS. nvml.Return implements error, so errors.Is matches
// the code.
func nvmlError(what string, ret nvml.Return) error {
	if ret == nvml.SUCCESS {
		return nil
	}
	return &callError{what: what, ret: ret}
}

// callError is a failed NVML call.
type callError struct {
	what string
	ret  nvml.Return
}

func (e *callError) Error() string { return e.what + ": " + returnString(e.ret) }
func (e *callError) Unwrap() error { return e.ret }

// returnNames names the return codes without calling into the library:
// nvml.Return.Error calls nvmlErrorString once the library is loaded, and no
// NVML function may run after a failed Init.
var returnNames = map[nvml.Return]string{
	nvml.ERROR_UNINITIALIZED:             "not initialized",
	nvml.ERROR_INVALID_ARGUMENT:          "invalid argument",
	nvml.ERROR_NOT_SUPPORTED:             "not supported",
	nvml.ERROR_NO_PERMISSION:             "no permission",
	nvml.ERROR_NOT_FOUND:                 "not found",
	nvml.ERROR_INSUFFICIENT_POWER:        "insufficient power",
	nvml.ERROR_DRIVER_NOT_LOADED:         "driver not loaded",
	nvml.ERROR_TIMEOUT:                   "timeout",
	nvml.ERROR_IRQ_ISSUE:                 "interrupt issue",
	nvml.ERROR_LIBRARY_NOT_FOUND:         "library not found",
	nvml.ERROR_FUNCTION_NOT_FOUND:        "function not found",
	nvml.ERROR_CORRUPTED_INFOROM:         "corrupted inforom",
	nvml.ERROR_GPU_IS_LOST:               "gpu is lost",
	nvml.ERROR_RESET_REQUIRED:            "reset required",
	nvml.ERROR_OPERATING_SYSTEM:          "operating system error",
	nvml.ERROR_LIB_RM_VERSION_MISMATCH:   "library and driver versions differ",
	nvml.ERROR_IN_USE:                    "in use",
	nvml.ERROR_MEMORY:                    "out of memory",
	nvml.ERROR_NO_DATA:                   "no data",
	nvml.ERROR_ARGUMENT_VERSION_MISMATCH: "argument version mismatch",
	nvml.ERROR_GPU_NOT_FOUND:             "gpu not found",
	nvml.ERROR_UNKNOWN:                   "unknown error",
}

func returnString(ret nvml.Return) string {
	if s, ok := returnNames[ret]; ok {
		return s
	}
	return "nvml return code " + strconv.Itoa(int(ret))
}

// notSupported reports whether err is NVML saying the device or driver lacks
// the feature: the field stays empty and nothing is wrong.
func notSupported(err error) bool {
	return errors.Is(err, nvml.ERROR_NOT_SUPPORTED) || errors.Is(err, nvml.ERROR_FUNCTION_NOT_FOUND)
}

package gpu

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The pod-resources v1 answer (k8s.io/kubelet/pkg/apis/podresources/v1,
// api.proto), decoded by hand with protowire: only the fields that name a
// container's devices. Unknown fields (CPU ids, memory, dynamic resources,
// topology, anything a newer kubelet adds) are skipped, as protobuf
// decoders do.
//
//	ListPodResourcesResponse { repeated PodResources pod_resources = 1; }
//	PodResources             { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }
//	ContainerResources       { string name = 1; repeated ContainerDevices devices = 2; }
//	ContainerDevices         { string resource_name = 1; repeated string device_ids = 2; }

type podResources struct {
	name, namespace string
	containers      []containerResources
}

type containerResources struct {
	name    string
	devices []containerDevices
}

type containerDevices struct {
	resourceName string
	deviceIDs    []string
}

var errBadWire = errors.New("malformed protobuf")

func decodeListResponse(b []byte) ([]podResources, error) {
	var out []podResources
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		pr, err := decodePodResources(v)
		if err != nil {
			return fmt.Errorf("pod_resources: %w", err)
		}
		out = append(out, pr)
		return nil
	})
	return out, err
}

func decodePodResources(b []byte) (podResources, error) {
	var pr podResources
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			pr.name = string(v)
		case 2:
			pr.namespace = string(v)
		case 3:
			c, err := decodeContainer(v)
			if err != nil {
				return fmt.Errorf("containers: %w", err)
			}
			pr.containers = append(pr.containers, c)
		}
		return nil
	})
	return pr, err
}

func decodeContainer(b []byte) (containerResources, error) {
	var c containerResources
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			c.name = string(v)
		case 2:
			d, err := decodeDevices(v)
			if err != nil {
				return fmt.Errorf("devices: %w", err)
			}
			c.devices = append(c.devices, d)
		}
		return nil
	})
	return c, err
}

func decodeDevices(b []byte) (containerDevices, error) {
	var d containerDevices
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			d.resourceName = string(v)
		case 2:
			d.deviceIDs = append(d.deviceIDs, string(v))
		}
		return nil
	})
	return d, err
}

// eachField calls f with every field of the message b; v is the payload of
// length-delimited fields and nil for the other wire types, which are
// skipped.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %w", errBadWire, protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %w", errBadWire, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

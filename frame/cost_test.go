package frame

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// arrayOf encodes an array32 of n copies of elem.
func arrayOf(n int, elem []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{0xdd}, uint32(n))
	return append(b, bytes.Repeat(elem, n)...)
}

// Shapes that cost the decoder the most per payload byte when decoded
// into an any.
var costlyShapes = []struct {
	name string
	elem []byte
}{
	{"empty maps", []byte{0x80}},
	{"maps of one nil", []byte{0x81, 0xa0, 0xc0}},
	{"maps of one int", []byte{0x81, 0xa1, 'a', 0x01}},
	{"maps of eight", []byte{0x88, 0xa1, 'a', 0xc0, 0xa1, 'b', 0xc0, 0xa1, 'c', 0xc0, 0xa1, 'd', 0xc0,
		0xa1, 'e', 0xc0, 0xa1, 'f', 0xc0, 0xa1, 'g', 0xc0, 0xa1, 'h', 0xc0}},
	{"nested maps", []byte{0x81, 0xa0, 0x80}},
	{"empty arrays", []byte{0x90}},
	{"arrays of one nil", []byte{0x91, 0xc0}},
	{"empty strings", []byte{0xa0}},
	{"one-byte strings", []byte{0xa1, 'x'}},
	{"empty bins", []byte{0xc4, 0x00}},
	{"nils", []byte{0xc0}},
	{"uint16s", []byte{0xcd, 1, 0}},
	{"float32s", []byte{0xca, 1, 0, 0, 0}},
}

func TestCostlyPayloadsIntoAnyAreBounded(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	for _, shape := range costlyShapes {
		for _, n := range []int{1000, 200000} {
			t.Run(fmt.Sprintf("%s/%d", shape.name, n), func(t *testing.T) {
				b := arrayOf(n, shape.elem)
				limit := uint64(PayloadCostFactor*len(b) + PayloadCostSlack)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				var v any
				err := DecodePayload(b, &v)
				runtime.ReadMemStats(&after)
				used := after.TotalAlloc - before.TotalAlloc
				if err != nil {
					require.ErrorIs(t, err, ErrTooLarge)
					assert.Less(t, used, uint64(64<<10), "refused before decoding")
					return
				}
				t.Logf("accepted: %d bytes, allocated %d (%.0fx)", len(b), used, float64(used)/float64(len(b)))
				assert.LessOrEqual(t, used, limit, "decoding %d bytes allocated %d (%.0fx)",
					len(b), used, float64(used)/float64(len(b)))
			})
		}
	}
}

func TestCostBoundSparesTypedDestinations(t *testing.T) {
	b := arrayOf(200000, []byte{0x80}) // 200 000 empty maps
	var v any
	require.ErrorIs(t, DecodePayload(b, &v), ErrTooLarge)
	var m []map[string]int
	require.ErrorIs(t, DecodePayload(b, &m), ErrTooLarge, "maps are dynamic too")
	var typed []struct{ A int }
	require.NoError(t, DecodePayload(b, &typed), "structs cost what their type says")
	assert.Len(t, typed, 200000)
}

func TestCostBoundAcceptsOrdinaryPayloads(t *testing.T) {
	type user struct {
		ID    int
		Name  string
		Email string
		Tags  []string
	}
	users := make([]user, 20000)
	for i := range users {
		users[i] = user{ID: i, Name: fmt.Sprint("user", i), Email: "u@example.com", Tags: []string{"a", "b"}}
	}
	for name, value := range map[string]any{
		"list of records": users,
		"4 MiB of bytes":  make([]byte, 4<<20),
		"long string":     string(bytes.Repeat([]byte("x"), 1<<20)),
		"many numbers":    make([]float64, 100000),
	} {
		b, err := msgpack.Marshal(value)
		require.NoError(t, err)
		var v any
		assert.NoError(t, DecodePayload(b, &v), name)
	}
}

func TestHoldsDynamic(t *testing.T) {
	type tree struct {
		Kids []*tree
		Name string
	}
	type withMap struct{ M map[string]int }
	for v, want := range map[any]bool{
		new(any):                true,
		new(int):                false,
		new([]byte):             false,
		new([]string):           false,
		new(tree):               false,
		new(withMap):            true,
		new([]withMap):          true,
		new(msgpack.RawMessage): true,
		new(struct{ X any }):    true,
	} {
		assert.Equal(t, want, holdsDynamic(reflectTypeOf(v)), "%T", v)
	}
}

func reflectTypeOf(v any) reflect.Type { return reflect.TypeOf(v) }

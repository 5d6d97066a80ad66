package msgpackrpc

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Ext is a msgpack ext value of any type id: its Data is the ext's bytes
// as they were on the wire. Decode into an Ext to take an ext whose type
// has no Go type of its own. The zero Ext is type 0 with no data.
type Ext struct {
	Type int8
	Data []byte
}

// EncodeMsgpack writes e as a msgpack ext.
func (e Ext) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeExtHeader(e.Type, len(e.Data)); err != nil {
		return err
	}
	_, err := enc.Writer().Write(e.Data)
	return err
}

// DecodeMsgpack reads a msgpack ext of any type into e.
func (e *Ext) DecodeMsgpack(dec *msgpack.Decoder) error {
	id, n, err := dec.DecodeExtHeader()
	if err != nil {
		return err
	}
	data := make([]byte, n) // n is bounded by the payload, checked before decoding
	if err := dec.ReadFull(data); err != nil {
		return err
	}
	*e = Ext{Type: id, Data: data}
	return nil
}

// EncodeExt writes v, msgpack-encoded with integers in their shortest
// form, as the data of an ext of type id. Call it from the EncodeMsgpack
// method of a Go type that travels as that ext type.
func EncodeExt(enc *msgpack.Encoder, id int8, v any) error {
	var data bytes.Buffer
	inner := msgpack.NewEncoder(&data)
	inner.UseCompactInts(true)
	if err := inner.Encode(v); err != nil {
		return err
	}
	return Ext{Type: id, Data: data.Bytes()}.EncodeMsgpack(enc)
}

// DecodeExt reads an ext of type id and decodes its data, which must be
// msgpack, into v. Call it from the DecodeMsgpack method of a Go type that
// travels as that ext type. An ext of another type is an error.
func DecodeExt(dec *msgpack.Decoder, id int8, v any) error {
	var e Ext
	if err := e.DecodeMsgpack(dec); err != nil {
		return err
	}
	if e.Type != id {
		return fmt.Errorf("msgpackrpc: ext of type %d, want %d", e.Type, id)
	}
	if err := msgpack.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("msgpackrpc: data of ext type %d: %w", id, err)
	}
	return nil
}

// Neovim's ext type ids, which nvim_get_api_info reports under "types".
const (
	ExtBuffer  int8 = 0
	ExtWindow  int8 = 1
	ExtTabpage int8 = 2
)

// Buffer is a Neovim buffer handle, ext type ExtBuffer on the wire.
type Buffer int64

// EncodeMsgpack writes b as Neovim does.
func (b Buffer) EncodeMsgpack(enc *msgpack.Encoder) error {
	return EncodeExt(enc, ExtBuffer, int64(b))
}

// DecodeMsgpack reads a buffer handle.
func (b *Buffer) DecodeMsgpack(dec *msgpack.Decoder) error {
	return DecodeExt(dec, ExtBuffer, (*int64)(b))
}

// Window is a Neovim window handle, ext type ExtWindow on the wire.
type Window int64

// EncodeMsgpack writes w as Neovim does.
func (w Window) EncodeMsgpack(enc *msgpack.Encoder) error {
	return EncodeExt(enc, ExtWindow, int64(w))
}

// DecodeMsgpack reads a window handle.
func (w *Window) DecodeMsgpack(dec *msgpack.Decoder) error {
	return DecodeExt(dec, ExtWindow, (*int64)(w))
}

// Tabpage is a Neovim tabpage handle, ext type ExtTabpage on the wire.
type Tabpage int64

// EncodeMsgpack writes t as Neovim does.
func (t Tabpage) EncodeMsgpack(enc *msgpack.Encoder) error {
	return EncodeExt(enc, ExtTabpage, int64(t))
}

// DecodeMsgpack reads a tabpage handle.
func (t *Tabpage) DecodeMsgpack(dec *msgpack.Decoder) error {
	return DecodeExt(dec, ExtTabpage, (*int64)(t))
}

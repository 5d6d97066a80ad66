package sockopt

import (
	"net"
	"runtime"
	"testing"
	"time"
)

func TestSetUserTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	set := SetUserTimeout(c, 40*time.Second)
	if runtime.GOOS != "linux" {
		if set {
			t.Fatal("set on a system without the option")
		}
		return
	}
	if !set {
		t.Fatal("TCP_USER_TIMEOUT was not set")
	}
	if got, ok := UserTimeout(c); !ok || got != 40*time.Second {
		t.Fatalf("TCP_USER_TIMEOUT reads back as %v, %v", got, ok)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if SetUserTimeout(a, time.Second) {
		t.Fatal("set on a conn that is not TCP")
	}
}

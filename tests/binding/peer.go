// A node's program in Go (tests/binding.rs), built with CGO_ENABLED=0: the same steps as
// peer.c. Go makes its socket calls itself, so only cgroup-BPF can bind it.
// Usage: peer PEER_IP TCP_PORT UDP_PORT EXPLICIT_IP TAG LISTEN_PORT
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: peer PEER_IP TCP_PORT UDP_PORT EXPLICIT_IP TAG LISTEN_PORT")
		os.Exit(2)
	}
	peer, tcpPort, udpPort, explicit, tag, listenPort := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]

	l, err := net.Listen("tcp", ":"+listenPort)
	if err != nil {
		fail("listen", err)
	}
	fmt.Println("listen", l.Addr())

	var t net.Conn
	for i := 0; i < 200; i++ {
		if t, err = net.Dial("tcp", net.JoinHostPort(peer, tcpPort)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		fail("tcp connect", err)
	}
	fmt.Println("tcp", t.LocalAddr())
	t.Close()

	dst, err := net.ResolveUDPAddr("udp4", net.JoinHostPort(peer, udpPort))
	if err != nil {
		fail("resolve", err)
	}
	u, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		fail("udp listen", err)
	}
	if _, err = u.WriteTo([]byte(tag+"-unconnected"), dst); err != nil {
		fail("sendto", err)
	}

	c, err := net.DialUDP("udp4", nil, dst)
	if err != nil {
		fail("udp connect", err)
	}
	fmt.Println("udp-connected", c.LocalAddr())
	if _, err = c.Write([]byte(tag + "-connected")); err != nil {
		fail("send", err)
	}

	e, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(explicit)}, dst)
	if err != nil {
		fail("explicit bind", err)
	}
	if _, err = e.Write([]byte(tag + "-explicit")); err != nil {
		fail("send", err)
	}

	ll, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fail("loopback listen", err)
	}
	lc, err := net.Dial("tcp4", ll.Addr().String())
	if err != nil {
		fail("loopback connect", err)
	}
	fmt.Println("loopback", lc.LocalAddr())
}

package server

import (
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/mdlayher/vsock"
	"github.com/prometheus/exporter-toolkit/web"
)

// Listen opens the listeners that exporter-toolkit's web.ListenAndServe
// would (systemd sockets, vsock://:PORT, TCP addresses), their connections
// counted against limit (which may be nil). Serve them with
// web.ServeMultiple, which adds TLS and basic auth, and a server from
// NewServer with the same limit.
func Listen(flags *web.FlagConfig, limit *ConnLimit, logger *slog.Logger) ([]net.Listener, error) {
	var ls []net.Listener
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	switch {
	case flags.WebSystemdSocket != nil && *flags.WebSystemdSocket:
		logger.Info("Listening on systemd activated listeners instead of port listeners.")
		sl, err := activation.Listeners()
		if err != nil {
			return nil, err
		}
		if len(sl) == 0 {
			return nil, errors.New("no socket activation file descriptors found")
		}
		ls = sl
	case flags.WebListenAddresses == nil || len(*flags.WebListenAddresses) == 0:
		return nil, web.ErrNoListeners
	default:
		for _, addr := range *flags.WebListenAddresses {
			l, err := listen(addr)
			if err != nil {
				closeAll()
				return nil, err
			}
			ls = append(ls, l)
		}
	}
	for i, l := range ls {
		ls[i] = limit.Listener(l)
	}
	return ls, nil
}

func listen(addr string) (net.Listener, error) {
	if strings.HasPrefix(addr, "vsock://") {
		u, err := url.Parse(addr)
		if err != nil {
			return nil, err
		}
		_, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			return nil, err
		}
		p, err := strconv.ParseUint(port, 10, 32)
		if err != nil {
			return nil, err
		}
		return vsock.Listen(uint32(p), nil)
	}
	return net.Listen("tcp", addr)
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/dify-exporter/dify_exporter/collector"
)

// maxRegistrationBody bounds one registration request.
const maxRegistrationBody = 1 << 20

// registration is one entry of a POST /api/v1/runs body. Dify's own name
// for the field, workflow_run_id, is accepted for run_id.
type registration struct {
	App           string `json:"app"`
	RunID         string `json:"run_id"`
	WorkflowRunID string `json:"workflow_run_id"`
}

func (r registration) runID() (string, error) {
	switch {
	case r.RunID == "" && r.WorkflowRunID == "":
		return "", errors.New(`"run_id" is missing (or Dify's "workflow_run_id")`)
	case r.RunID == "":
		return r.WorkflowRunID, nil
	case r.WorkflowRunID != "" && r.WorkflowRunID != r.RunID:
		return "", errors.New(`"run_id" and "workflow_run_id" differ: give one`)
	}
	return r.RunID, nil
}

// registrationHandler serves POST /api/v1/runs: one {"app","run_id"}
// object or an array of them. Entries before a refused one stay accepted.
// See docs/registration.md.
type registrationHandler struct {
	exp    *collector.Exporter
	logger log.Logger
}

// isJSON reports whether a Content-Type is application/json, with at
// most a UTF-8 charset. Anything else is refused: text/plain and form
// types are what a browser posts cross-site without asking first.
func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

func (h registrationHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRegistrationBody+1))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if len(body) > maxRegistrationBody {
		http.Error(w, fmt.Sprintf("body larger than %d bytes", maxRegistrationBody), http.StatusRequestEntityTooLarge)
		return
	}
	var regs []registration
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		err = json.Unmarshal(body, &regs)
	} else {
		var one registration
		err = json.Unmarshal(body, &one)
		regs = []registration{one}
	}
	if err != nil {
		http.Error(w, `body must be {"app": NAME, "run_id": UUID} or an array of them`, http.StatusBadRequest)
		return
	}
	from := registrant(r)
	accepted, elsewhere, refuted := 0, 0, 0
	for i, reg := range regs {
		id, err := reg.runID()
		if err == nil {
			err = h.exp.RegisterFrom(reg.App, from, id)
		}
		if len(regs) > 1 {
			// A batch goes to every replica, each taking its share; an
			// ID Dify refuted does not cost the rest of the batch.
			switch {
			case errors.Is(err, collector.ErrOtherShard):
				elsewhere++
				continue
			case errors.Is(err, collector.ErrRefuted):
				refuted++
				continue
			}
		}
		if err != nil {
			code := http.StatusBadRequest
			switch {
			case errors.Is(err, collector.ErrCapFull):
				code = http.StatusTooManyRequests
			case errors.Is(err, collector.ErrOtherShard):
				code = http.StatusMisdirectedRequest
			case errors.Is(err, collector.ErrRefuted):
				code = http.StatusUnprocessableEntity
			}
			msg := err.Error()
			if len(regs) > 1 {
				msg = fmt.Sprintf("entry %d: %s (%d before it accepted)", i, msg, accepted)
			}
			level.Debug(h.logger).Log("msg", "Registration refused", "err", msg)
			http.Error(w, msg, code)
			return
		}
		accepted++
	}
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "accepted %d", accepted)
	if elsewhere > 0 {
		fmt.Fprintf(w, "; %d belong to other shards", elsewhere)
	}
	if refuted > 0 {
		fmt.Fprintf(w, "; %d refused: Dify answered 404 for them", refuted)
	}
	fmt.Fprintln(w)
}

// registrant names the client of a registration, for the fairness of a
// full cap: the basic-auth user if the request has one, else the remote
// address without its port (an IPv6 address by its /64, which one host
// usually has whole). The user name is only as trustworthy as the
// --web.config.file basic auth that checks it.
func registrant(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok && user != "" {
		return "user:" + user
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
	}
	return "addr:" + host
}

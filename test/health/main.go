// Command healthcheck runs the LivySession health checks of deploy/health/ with the code the tools run
// them with: Argo CD's Lua VM (gopher-lua, with Argo CD's conversion of the object into Lua tables), Flux's
// CEL status evaluator for Kustomization healthCheckExprs (github.com/fluxcd/pkg/runtime/cel), and kstatus
// (Flux's fork of cli-utils), which Flux and kubectl-based tools use when no expression is given.
//
// Input on stdin: {"lua": "...", "flux": {"current": ..., "failed": ..., "inProgress": ...}, "objects": [...]}.
// Output on stdout: one JSON object per input object: {"argocd": {status, message}, "flux": ..., "kstatus": ...}.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

type input struct {
	Lua     string                           `json:"lua"`
	Flux    kustomize.HealthCheckExpressions `json:"flux"`
	Objects []json.RawMessage                `json:"objects"`
}

type result struct {
	ArgoCD  map[string]string `json:"argocd"`
	Flux    string            `json:"flux"`
	Kstatus string            `json:"kstatus"`
	Error   string            `json:"error,omitempty"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail(err)
	}
	flux, err := fluxcel.NewStatusEvaluator(&in.Flux)
	if err != nil {
		fail(err)
	}
	out := []result{}
	for _, raw := range in.Objects {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fail(err)
		}
		r := result{}
		if hs, err := argoHealth(in.Lua, u.Object); err != nil {
			r.Error = "argocd: " + err.Error()
		} else {
			r.ArgoCD = hs
		}
		if fr, err := flux.Evaluate(context.Background(), u); err != nil {
			r.Error += " flux: " + err.Error()
		} else {
			r.Flux = string(fr.Status)
		}
		if kr, err := status.Compute(u); err != nil {
			r.Error += " kstatus: " + err.Error()
		} else {
			r.Kstatus = string(kr.Status)
		}
		out = append(out, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

// argoHealth runs a health.lua as Argo CD does (util/lua): the object as the global `obj`, the script's
// returned table read for `status` and `message`.
func argoHealth(script string, obj map[string]any) (map[string]string, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{
		// the libraries Argo CD opens for a health script (util/lua: package, base, table and a safe os);
		// string and math only with its UseOpenLibs option, so the script must not need them
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		l.Push(l.NewFunction(lib.fn))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	return map[string]string{
		"status":  lua.LVAsString(ret.RawGetString("status")),
		"message": lua.LVAsString(ret.RawGetString("message")),
	}, nil
}

// toLua converts a decoded JSON value as Argo CD's decodeValue does: objects and arrays become tables
// (arrays 1-based), numbers LNumber, strings LString, booleans LBool, null LNil.
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for i, e := range x {
			t.RawSetInt(i+1, toLua(l, e))
		}
		return t
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case nil:
		return lua.LNil
	default:
		return lua.LString(fmt.Sprint(x))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "healthcheck:", err)
	os.Exit(2)
}

// podnet-libcni: a CNI runtime in a few lines, built on libcni (the library
// containerd, CRI-O and podman use), so the lab drives plugins exactly as those
// runtimes do: conflist loading, VERSION negotiation, prevResult chaining and
// the result cache that CHECK and DEL read.
//
//	podnet-libcni add|check|del|validate NETWORK NETNS
//
// Settings come from the environment: NETCONFPATH (conflist dir), CNI_PATH
// (plugin dirs, colon-separated), CNI_CACHE_DIR, CNI_CONTAINERID, CNI_IFNAME
// and CNI_ARGS ("K=V;K=V"). A plugin error is printed as the CNI error JSON
// the plugin returned, with exit status 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func fail(code uint, msg string, details string) {
	out, _ := json.Marshal(types.Error{Code: code, Msg: msg, Details: details})
	fmt.Println(string(out))
	os.Exit(1)
}

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: podnet-libcni add|check|del|validate NETWORK NETNS")
		os.Exit(2)
	}
	action, network, netns := os.Args[1], os.Args[2], os.Args[3]
	list, err := libcni.LoadConfList(getenv("NETCONFPATH", "/etc/cni/net.d"), network)
	if err != nil {
		fail(7, fmt.Sprintf("loading network %q: %v", network, err), "")
	}
	var args [][2]string
	for _, pair := range strings.Split(os.Getenv("CNI_ARGS"), ";") {
		if kv := strings.SplitN(pair, "=", 2); len(kv) == 2 {
			args = append(args, [2]string{kv[0], kv[1]})
		}
	}
	netnsPath, _ := filepath.Abs(netns)
	rt := &libcni.RuntimeConf{
		ContainerID: getenv("CNI_CONTAINERID", "cni"),
		NetNS:       netnsPath,
		IfName:      getenv("CNI_IFNAME", "eth0"),
		Args:        args,
	}
	paths := filepath.SplitList(getenv("CNI_PATH", "/usr/lib/cni"))
	cni := libcni.NewCNIConfigWithCacheDir(paths, getenv("CNI_CACHE_DIR", "/var/lib/cni"), nil)
	ctx := context.Background()
	switch action {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		report(err)
		_ = result.Print()
	case "check":
		report(cni.CheckNetworkList(ctx, list, rt))
	case "del":
		report(cni.DelNetworkList(ctx, list, rt))
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		report(err)
		out, _ := json.Marshal(map[string]interface{}{"cniVersion": list.CNIVersion, "capabilities": caps})
		fmt.Println(string(out))
	default:
		fmt.Fprintf(os.Stderr, "unknown action %q (add, check, del, validate)\n", action)
		os.Exit(2)
	}
}

func report(err error) {
	if err == nil {
		return
	}
	var e *types.Error
	if errors.As(err, &e) { // libcni wraps the plugin's error: "plugin type=… failed (add): …"
		fail(e.Code, e.Msg, e.Details)
	}
	fail(999, err.Error(), "")
}

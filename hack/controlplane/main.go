// Command controlplane is one binary that runs any part of a local Kubernetes control plane,
// built from the official Kubernetes modules at the release pinned in go.mod:
//
//	controlplane etcd --data-dir DIR --client-port N --peer-port N
//	controlplane kube-apiserver [flags]
//	controlplane kube-controller-manager [flags]
//	controlplane kube-scheduler [flags]
//	controlplane kubelet [flags]
//
// One binary keeps the cold build to a single link of the shared Kubernetes packages; each
// part still runs in its own process, so every part keeps its upstream flags and defaults.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: controlplane etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet [flags]")
		os.Exit(2)
	}
	part, args := os.Args[1], os.Args[2:]
	var command *cobra.Command
	switch part {
	case "etcd":
		os.Exit(runEtcd(args))
	case "kube-apiserver":
		command = apiserver.NewAPIServerCommand()
	case "kube-controller-manager":
		command = controllermanager.NewControllerManagerCommand()
	case "kube-scheduler":
		command = scheduler.NewSchedulerCommand()
	case "kubelet":
		command = kubelet.NewKubeletCommand(context.Background())
	default:
		fmt.Fprintf(os.Stderr, "controlplane: unknown part %q\n", part)
		os.Exit(2)
	}
	command.SetArgs(args)
	os.Exit(cli.Run(command))
}

// runEtcd serves a single-member etcd on 127.0.0.1 until SIGTERM or SIGINT.
func runEtcd(args []string) int {
	flags := flag.NewFlagSet("etcd", flag.ExitOnError)
	dataDir := flags.String("data-dir", "", "directory for etcd's data")
	clientPort := flags.Int("client-port", 2379, "client port on 127.0.0.1")
	peerPort := flags.Int("peer-port", 2380, "peer port on 127.0.0.1")
	_ = flags.Parse(args)
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "etcd: --data-dir is required")
		return 2
	}

	clientURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", *clientPort)}
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", *peerPort)}
	cfg := embed.NewConfig()
	cfg.Name = "controlplane"
	cfg.Dir = *dataDir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peerURL.String())
	cfg.LogLevel = "warn"
	// A throwaway development store: durability across power loss is not worth the fsyncs.
	cfg.UnsafeNoFsync = true
	// Benchmarks churn through tens of thousands of Jobs, pods and Events; etcd's 2 GiB default
	// quota fills up long before the API server's compactions let freed pages be reused.
	cfg.QuotaBackendBytes = 8 << 30

	server, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
		return 1
	}
	defer server.Close()
	<-server.Server.ReadyNotify()
	fmt.Fprintf(os.Stderr, "etcd: serving on %s\n", clientURL.String())

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-signals:
		return 0
	case err := <-server.Err():
		fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
		return 1
	}
}

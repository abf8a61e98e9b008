package main

import (
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeKubeconfigs writes DIR/kubeconfigs/NAME.yaml per cluster and a merged DIR/kubeconfig
// with one context per cluster. Certificates are embedded, so a kubeconfig can be copied or
// stored in a Secret (which is how a MemberCluster refers to its credentials).
func writeKubeconfigs(dir string, members []*apiserver) (string, error) {
	kdir := filepath.Join(dir, "kubeconfigs")
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		return "", err
	}
	merged := clientcmdapi.NewConfig()
	for _, m := range members {
		ca, err := os.ReadFile(m.pki.CACert)
		if err != nil {
			return "", err
		}
		cert, err := os.ReadFile(m.pki.AdminCert)
		if err != nil {
			return "", err
		}
		key, err := os.ReadFile(m.pki.AdminKey)
		if err != nil {
			return "", err
		}
		one := clientcmdapi.NewConfig()
		for _, c := range []*clientcmdapi.Config{one, merged} {
			c.Clusters[m.name] = &clientcmdapi.Cluster{Server: m.server(), CertificateAuthorityData: ca}
			c.AuthInfos[m.name] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
			c.Contexts[m.name] = &clientcmdapi.Context{Cluster: m.name, AuthInfo: m.name, Namespace: "default"}
		}
		one.CurrentContext = m.name
		if err := clientcmd.WriteToFile(*one, filepath.Join(kdir, m.name+".yaml")); err != nil {
			return "", err
		}
	}
	merged.CurrentContext = members[0].name
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*merged, path)
}

// writeClientKubeconfig writes a kubeconfig for one client of one cluster (a component's own
// identity), certificates embedded.
func writeClientKubeconfig(path, cluster, server, caPath, certPath, keyPath string) error {
	ca, err := os.ReadFile(caPath)
	if err != nil {
		return err
	}
	cert, err := os.ReadFile(certPath)
	if err != nil {
		return err
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	c := clientcmdapi.NewConfig()
	c.Clusters[cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	c.AuthInfos[cluster] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	c.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: cluster}
	c.CurrentContext = cluster
	return clientcmd.WriteToFile(*c, path)
}

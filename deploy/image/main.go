// Command image builds balidx's container image without a container
// engine, as an OCI image archive that `docker load` / `podman load`
// read: the static binary (built here without cgo) as /balidx, run as
// 65532:65532 with /data its working directory — what deploy/Dockerfile
// builds.
//
//	cd deploy && go run ./image -repo .. -o ../bin/balidx-image.tar
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The user the image runs as (distroless's nonroot).
const uid, gid = 65532, 65532

func main() {
	repo := flag.String("repo", "..", "the balidx repository")
	out := flag.String("o", "balidx-image.tar", "the image archive to write")
	tag := flag.String("tag", "balidx:latest", "the image's name in the archive")
	flag.Parse()
	if err := build(*repo, *out, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// build compiles balidx from repo and writes the image to out.
func build(repo, out, tag string) error {
	dir, err := os.MkdirTemp("", "balidx-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "balidx")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/balidx")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, b)
	}
	img, err := image(bin)
	if err != nil {
		return err
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, ref, img)
}

// image is the binary at bin as /balidx in a one-layer image.
func image(bin string) (v1.Image, error) {
	exe, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	epoch := time.Unix(0, 0)
	for _, h := range []*tar.Header{
		{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: uid, Gid: gid, ModTime: epoch},
		{Name: "balidx", Typeflag: tar.TypeReg, Mode: 0o555, Size: int64(len(exe)), ModTime: epoch},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(exe); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromReader(&layer)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if cf == nil {
		return nil, errors.New("no config")
	}
	cfg := cf.Config
	cfg.User = fmt.Sprintf("%d:%d", uid, gid)
	cfg.Entrypoint = []string{"/balidx"}
	cfg.Cmd = []string{"run", "--data", "/data"}
	cfg.WorkingDir = "/data"
	cfg.ExposedPorts = map[string]struct{}{"8080/tcp": {}, "9090/tcp": {}}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		return nil, err
	}
	cf.OS, cf.Architecture = "linux", runtime.GOARCH // go build's, with no GOARCH set
	return mutate.ConfigFile(img, withConfig(cf, cfg))
}

func withConfig(cf *v1.ConfigFile, cfg v1.Config) *v1.ConfigFile {
	cf = cf.DeepCopy()
	cf.Config = cfg
	return cf
}

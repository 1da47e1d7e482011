package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The archive holds what the Dockerfile builds: a static /balidx run as a
// non-root user, /data owned by it, the ports and the default command.
func TestImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "balidx.tar")
	if err := build("../..", out, "balidx:test"); err != nil { // the repository, from deploy/image
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/balidx" || c.WorkingDir != "/data" || cf.OS != "linux" {
		t.Fatalf("config %+v (os %s)", c, cf.OS)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Fatalf("ports %v", c.ExposedPorts)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]*tar.Header{}
	var exe []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
		if h.Name == "balidx" {
			if exe, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if d := files["data/"]; d == nil || d.Uid != 65532 || d.Typeflag != tar.TypeDir {
		t.Fatalf("/data: %+v", d)
	}
	if len(files) != 2 || exe == nil {
		t.Fatalf("files %v", files)
	}
	f, err := elf.NewFile(bytes.NewReader(exe))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("/balidx is dynamically linked: the image has no libc")
		}
	}
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/balidx/balidx/storage"
)

// snapshotCmd exports a consistent copy of a snapshot, or imports one into
// a data directory so that a new query node starts from it and catches up
// from the stream position it holds.
func snapshotCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "import") {
		return errors.New("usage: balidx snapshot export|import [flags] FILE")
	}
	verb := args[0]
	fs := newCommandFlags("balidx snapshot "+verb, stderr)
	data := fs.String("data", string(defaultDataDir), "data directory (export: of a stopped node; import: of the new node)")
	admin := fs.String("admin", "", "export: admin listener of a running node (a hot, consistent copy)")
	if err := parseFlags(fs, args[1:], getenv); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: balidx snapshot %s [flags] FILE", verb)
	}
	file := fs.Arg(0)
	target := dataDir(*data).snapshot()
	if verb == "export" {
		if *admin != "" {
			tmp, err := fetchSnapshot(ctx, *admin)
			if err != nil {
				return err
			}
			if err := os.Rename(tmp, file); err != nil {
				os.Remove(tmp)
				return err
			}
		} else if err := copySnapshot(target, file); err != nil {
			return err
		}
		return describe(stdout, "exported", file)
	}
	if _, err := os.Stat(target); err == nil {
		return fmt.Errorf("%s exists: import only into a new data directory (or move it away first)", target)
	}
	if err := describe(io.Discard, "", file); err != nil { // refuse a foreign or damaged file before copying
		return err
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	if err := copyFile(file, target+".importing"); err != nil {
		return err
	}
	if err := os.Rename(target+".importing", target); err != nil {
		return err
	}
	return describe(stdout, "imported", target)
}

// copySnapshot copies a stopped node's snapshot through a read transaction.
func copySnapshot(from, to string) error {
	s, err := storage.Open(storage.Config{Path: from, ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	f, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := s.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(to)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// snapshotMeta reads the description of the snapshot file at path, opened
// read-only (a file of another format is refused).
func snapshotMeta(path string) (storage.Meta, error) {
	s, err := storage.Open(storage.Config{Path: path, ReadOnly: true})
	if err != nil {
		return storage.Meta{}, err
	}
	defer s.Close()
	return s.Meta()
}

// describe opens a snapshot file read-only (refusing anything else) and
// prints its chain, trusted block, stream position and digest.
func describe(w io.Writer, what, path string) error {
	m, err := snapshotMeta(path)
	if err != nil {
		return err
	}
	if !m.HasTrusted {
		return fmt.Errorf("%s holds no block", path)
	}
	_, err = fmt.Fprintf(w, "%s %s: chain %d, trusted block %d %s, stream seq %d, %d accounts, digest %s\n",
		what, path, m.ChainID, m.Trusted.Number, m.Trusted.Hash, m.StreamSeq, m.Accounts, m.Digest)
	return err
}

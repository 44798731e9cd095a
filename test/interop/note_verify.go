// An independent check of Connect's checkpoints with Go's reference implementation of signed
// notes (golang.org/x/mod/sumdb/note), which C2SP signed-note describes.
//
//	go run note_verify.go '<verifier key>' < checkpoint.txt
//
// Prints the checkpoint's origin, size and root when a signature by the key verifies; exits 1 otherwise.
package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: note_verify VERIFIER_KEY < NOTE")
	}
	verifier, err := note.NewVerifier(os.Args[1])
	if err != nil {
		fail("bad verifier key: %v", err)
	}
	msg, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("note does not verify: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		fail("checkpoint text is not three lines")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		fail("bad tree size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		fail("bad root hash %q", lines[2])
	}
	if lines[0] != verifier.Name() {
		fail("origin %q is not the key name %q", lines[0], verifier.Name())
	}
	fmt.Printf("origin=%s size=%d root=%s\n", lines[0], size, lines[2])
}

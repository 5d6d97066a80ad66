package frame

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// protocolDoc is the wire format's description for other implementers.
const protocolDoc = "../PROTOCOL.md"

// docSection returns the text of PROTOCOL.md from the heading that starts
// with heading to the next heading of the same or a higher level.
func docSection(t *testing.T, doc, heading string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading)
	require.GreaterOrEqual(t, i, 0, "PROTOCOL.md has no heading %q", heading)
	level := strings.Index(heading, " ")
	rest := doc[i+1+len(heading):]
	end := regexp.MustCompile(`\n#{1,` + string(rune('0'+level)) + `} `).FindStringIndex(rest)
	if end == nil {
		return rest
	}
	return rest[:end[0]]
}

// docTableBytes returns the bytes in the first column of each table row
// whose first cell is code, as "| `00 01 …` | ... |".
func docTableBytes(t *testing.T, section string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, m := range regexp.MustCompile("(?m)^\\| `([0-9a-f …]+)` \\|").FindAllStringSubmatch(section, -1) {
		b, err := parseHex(strings.ReplaceAll(m[1], "…", ""))
		require.NoError(t, err, "row %q", m[0])
		out = append(out, b)
	}
	return out
}

func readDoc(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(protocolDoc)
	require.NoError(t, err)
	return string(doc)
}

// TestDocWorkedExamples checks that every hex dump in PROTOCOL.md's worked
// examples is its golden file, comments included.
func TestDocWorkedExamples(t *testing.T) {
	examples := docSection(t, readDoc(t), "## 24. Worked examples")
	re := regexp.MustCompile("(?s)\n### [^\n]*\\(`([a-z_]+\\.hex)`\\)\n.*?```\n(.*?)```")
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(examples, -1) {
		name, dump := m[1], m[2]
		seen[name] = true
		got, err := parseHex(dump)
		require.NoError(t, err, name)
		assert.Equal(t, readGolden(t, name), got, "PROTOCOL.md's dump of %s", name)

		// The dump is the golden file without its leading comment lines.
		file, err := os.ReadFile(goldenDir + "/" + name)
		require.NoError(t, err)
		var body []string
		for line := range strings.Lines(string(file)) {
			if !strings.HasPrefix(line, "#") {
				body = append(body, line)
			}
		}
		assert.Equal(t, strings.Join(body, ""), dump, "PROTOCOL.md's dump of %s, comments included", name)
	}
	assert.Len(t, seen, len(goldenFrames)+2, "PROTOCOL.md shows every golden file")
}

// TestDocRejectedFrames checks that every frame PROTOCOL.md lists as
// rejected is rejected.
func TestDocRejectedFrames(t *testing.T) {
	rows := docTableBytes(t, docSection(t, readDoc(t), "### Frames a receiver rejects"))
	require.NotEmpty(t, rows)
	for _, b := range rows {
		_, err := readOne(b, DefaultMaxFrameSize)
		require.Error(t, err, "% x", b)
		assert.True(t, isViolation(err), "% x: %v", b, err)
	}
}

// TestDocPayloadBombs checks that every payload PROTOCOL.md lists as
// rejected is rejected.
func TestDocPayloadBombs(t *testing.T) {
	rows := docTableBytes(t, docSection(t, readDoc(t), "## 9. Payloads"))
	require.Len(t, rows, 5)
	for _, b := range rows {
		var v any
		assert.ErrorIs(t, DecodePayload(b, &v), ErrMalformed, "% x", b)
	}
}

// TestDocNumbers checks the numbers PROTOCOL.md's tables give against the
// constants.
func TestDocNumbers(t *testing.T) {
	doc := readDoc(t)
	types := docSection(t, doc, "## 5. Frame types and their bodies")
	for typ := TypeRequest; typ <= TypeTake; typ++ {
		assert.Regexp(t, regexp.MustCompile(`(?m)^\| `+strconv.Itoa(int(typ))+` \| `+typ.String()+` \|`), types)
	}
	assert.Equal(t, "Type(16)", (TypeTake + 1).String(), "PROTOCOL.md says types 16 to 255 are not defined")
	assert.Contains(t, types, "Types 0 and 16–255 are not defined")
	codes := docSection(t, doc, "## 8. Error codes")
	for c := CodeApplication; c <= CodeInternal; c++ {
		assert.Regexp(t, regexp.MustCompile(`(?m)^\| `+string(rune('0'+c))+` \| `+c.String()+` \|`), codes)
	}
	flat := strings.Join(strings.Fields(doc), " ")
	for _, phrase := range []string{
		"16 MiB (16 777 216) by default",
		"nest at most 256 deep (`frame.MaxPayloadDepth`)",
		"at most 65536 bytes (`frame.MaxMessageLen`)",
		"method length, 1–65535",
		"| CHALLENGE nonce | 32 to 255 bytes |",
		"| PROOF | exactly 32 bytes |",
		"ASCII `muxrpc auth v1`: `6d 75 78 72 70 63 20 61 75 74 68 20 76 31`",
	} {
		assert.True(t, strings.Contains(flat, phrase), "PROTOCOL.md does not say %q", phrase)
	}
	assert.Equal(t, 16777216, DefaultMaxFrameSize)
	assert.Equal(t, 256, MaxPayloadDepth)
	assert.Equal(t, 65536, MaxMessageLen)
	assert.Equal(t, 65535, MaxMethodLen)
	assert.Equal(t, 32, NonceSize)
	assert.Equal(t, 255, maxNonceSize)
	assert.Equal(t, 32, proofSize)
	assert.Equal(t, "muxrpc auth v1", authLabel)
}

func isViolation(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge)
}

// TestDocAuthVector checks the authentication test vector PROTOCOL.md
// spells out: the message under the PROOF example is what side B
// authenticates, its HMAC is proof.hex's body, and side A's proof is
// the one given after it.
func TestDocAuthVector(t *testing.T) {
	section := docSection(t, docSection(t, readDoc(t), "## 24. Worked examples"), "### PROOF (`proof.hex`)")
	blocks := regexp.MustCompile("(?s)```\n(.*?)```").FindAllStringSubmatch(section, -1)
	require.Len(t, blocks, 2, "the PROOF frame and the message it authenticates")
	msg, err := parseHex(blocks[1][1])
	require.NoError(t, err)
	require.Len(t, msg, 81)
	mac := hmac.New(sha256.New, goldenKey)
	mac.Write(msg)
	assert.Equal(t, goldenProofS, mac.Sum(nil))

	flat := strings.Join(strings.Fields(section), " ")
	m := regexp.MustCompile("its body is `([0-9a-f ]+)`").FindStringSubmatch(flat)
	require.NotNil(t, m, "side A's proof")
	proofA, err := parseHex(m[1])
	require.NoError(t, err)
	assert.Equal(t, goldenProofC, proofA)
}

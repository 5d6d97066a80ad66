package frame

import (
	"errors"
	"os"
	"regexp"
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
	examples := docSection(t, readDoc(t), "## 18. Worked examples")
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
	assert.Len(t, seen, len(goldenFrames)+1, "PROTOCOL.md shows every golden file")
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
	for _, typ := range []Type{TypeRequest, TypeNotify, TypeResponse, TypeError, TypeCancel, TypeGoAway} {
		assert.Regexp(t, regexp.MustCompile(`(?m)^\| `+string(rune('0'+typ))+` \| `+typ.String()+` \|`), types)
	}
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
	} {
		assert.True(t, strings.Contains(flat, phrase), "PROTOCOL.md does not say %q", phrase)
	}
	assert.Equal(t, 16777216, DefaultMaxFrameSize)
	assert.Equal(t, 256, MaxPayloadDepth)
	assert.Equal(t, 65536, MaxMessageLen)
	assert.Equal(t, 65535, MaxMethodLen)
}

func isViolation(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge)
}

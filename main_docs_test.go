package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// commandLines are the commands whose flags the documentation lists: how a user types them (the import
// command takes its two arguments before the flags) and how the usage lines name them.
var commandLines = []struct {
	args []string
	name string
}{
	{[]string{"run"}, "otabridge [run]"},
	{[]string{"ota", "inspect"}, "otabridge ota inspect"},
	{[]string{"ota", "create"}, "otabridge ota create"},
	{[]string{"zcl", "decode"}, "otabridge zcl decode"},
	{[]string{"simstick"}, "otabridge simstick"},
	{[]string{"addon"}, "otabridge addon"},
	{[]string{"health"}, "otabridge health"},
	{[]string{"import", "z2m", "path"}, "otabridge import"},
}

// usageEntry returns a command's entry in a usage listing (README's code block, `otabridge help`): the
// line that starts with its name and the indented lines that follow, up to the next command.
func usageEntry(t *testing.T, listing, name string) string {
	t.Helper()
	var entry []string
	in := false
	for _, l := range strings.Split(listing, "\n") {
		if s := strings.TrimSpace(l); strings.HasPrefix(s, "otabridge ") {
			in = strings.HasPrefix(s, name+" ") || s == name
		}
		if in {
			entry = append(entry, l)
		}
	}
	if len(entry) == 0 {
		t.Fatalf("the usage listing has no %q:\n%s", name, listing)
	}
	return strings.Join(entry, "\n") + "\n"
}

// bullet returns the list item of a Markdown text that starts with prefix.
func bullet(t *testing.T, text, prefix string) string {
	t.Helper()
	i := strings.Index(text, "\n- "+prefix)
	if i < 0 {
		t.Fatalf("no list item starting with %q", prefix)
	}
	s := text[i+1:]
	if j := strings.Index(s, "\n- "); j >= 0 {
		s = s[:j]
	}
	return s
}

// flagLine is a flag in the flag package's -h output: "  -name" at the start of a line.
var flagLine = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)

// commandFlags asks a command for its flags (`-h`) and returns their names.
func commandFlags(t *testing.T, args []string) []string {
	t.Helper()
	var out, errb bytes.Buffer
	runMain(append(append([]string{}, args...), "-h"), &out, &errb)
	var names []string
	for _, m := range flagLine.FindAllStringSubmatch(out.String()+errb.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("%v -h printed no flags:\n%s%s", args, out.String(), errb.String())
	}
	return names
}

// section returns the text of a Markdown file from the heading to the next heading of the same level.
func section(t *testing.T, path, heading string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("%s has no heading %q", path, heading)
	}
	s = s[i+len(heading)+2:]
	level := heading[:strings.Index(heading, " ")+1]
	if j := strings.Index(s, "\n"+level); j >= 0 {
		s = s[:j]
	}
	return s
}

// mentionsFlag reports whether text names the flag as users type it (--name; -o for one letter).
func mentionsFlag(text, name string) bool {
	if len(name) == 1 {
		return strings.Contains(text, " -"+name+" ")
	}
	return regexp.MustCompile(`--` + regexp.QuoteMeta(name) + `[\s\]\x60]`).MatchString(text)
}

// Every flag of every command is in README.md's "Command line" section and in `otabridge help`; the
// commands the add-on's DOCS.md lists under "Tools in the container" have all their flags there too.
func TestDocsListEveryFlag(t *testing.T) {
	readme := section(t, "README.md", "## Command line")
	readme = readme[strings.Index(readme, "```\n")+4:] // the usage block, the section's first
	readme = readme[:strings.Index(readme, "\n```")]
	docs := section(t, "addon/DOCS.md", "## Tools in the container")
	var help bytes.Buffer
	if code := runMain([]string{"help"}, &help, &help); code != 0 {
		t.Fatalf("otabridge help: exit %d", code)
	}
	for _, c := range commandLines {
		inReadme, inHelp := usageEntry(t, readme, c.name), usageEntry(t, help.String(), c.name)
		inDocs := ""
		if c.args[0] == "simstick" || c.args[0] == "health" {
			inDocs = bullet(t, docs, "`"+c.name)
		}
		for _, flag := range commandFlags(t, c.args) {
			if !mentionsFlag(inReadme, flag) {
				t.Errorf("README.md, Command line: %s has no --%s", c.name, flag)
			}
			if !mentionsFlag(inHelp, flag) {
				t.Errorf("otabridge help: %s has no --%s", c.name, flag)
			}
			if inDocs != "" && !mentionsFlag(inDocs, flag) {
				t.Errorf("addon/DOCS.md, Tools in the container: %s has no --%s", c.name, flag)
			}
		}
	}
}

package bridge

// A Go port of the part of Home Assistant that turns an update entity's two versions into its state, so
// tests can check that what otabridge publishes shows "update available" exactly when the image is newer.
//
// Sources (read for facts, not copied):
//   - home-assistant/core homeassistant/components/update/__init__.py, UpdateEntity.state and
//     version_is_newer: no version → unknown; latest == skipped or latest == installed (string equality) →
//     off; AwesomeVersion(latest) > installed → on, else off; AwesomeVersionCompareException → on.
//   - ludeeus/awesomeversion (2026): awesomeversion.py (strip, trailing ".", "v"/"V"/"v."/"V." prefix,
//     strategy with fast paths for special containers, 0x… HexVer and all-digit BuildVer, then the regexes
//     in VERSION_STRATEGIES order; sections, section(), modifier, modifier_type, simple; __gt__),
//     utils/regex.py, strategy.py, comparehandlers/{container,simple,sections,modifier}.py.
// The semver pre-release handler (comparehandlers/modifier.py) is reached only when a SemVer version's
// sections tie; it is not ported and reports that instead of guessing.

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
)

type avStrategy string

const (
	avBuildVer         avStrategy = "BuildVer"
	avCalVer           avStrategy = "CalVer"
	avHexVer           avStrategy = "HexVer"
	avSemVer           avStrategy = "SemVer"
	avSimpleVer        avStrategy = "SimpleVer"
	avPEP440           avStrategy = "PEP 440"
	avSpecialContainer avStrategy = "SpecialContainer"
	avUnknown          avStrategy = "unknown"
)

var (
	avReDigit         = regexp.MustCompile(`^[a-z]*(\d+)[a-z]*`)
	avReModifier      = regexp.MustCompile(`^((?:\d+\-|\d|))(([a-z]+)\.?(\d*))$`)
	avReCompoundMod   = regexp.MustCompile(`^([a-z]+)(\d*)-.*$`)
	avReIsSingleDigit = regexp.MustCompile(`^\d$`)
	avReSimple        = regexp.MustCompile(`^[vV]?((\d+)(\.\d+)+)$`)
	avReSemVer        = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)` +
		`(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
	// VERSION_STRATEGIES, in order.
	avStrategies = []struct {
		s  avStrategy
		re *regexp.Regexp
	}{
		{avBuildVer, regexp.MustCompile(`^\d+$`)},
		{avCalVer, regexp.MustCompile(`^(\d{2}|\d{4})\.\d{1,2}?(\.?\d{1,2}?\.?)?(\.\d)?(\d*(\w+\d+)?)$`)},
		{avHexVer, regexp.MustCompile(`^0x[A-Fa-f0-9]+$`)},
		{avSemVer, avReSemVer},
		{avSpecialContainer, regexp.MustCompile(`^(?:latest|dev|stable|beta)$`)},
		{avSimpleVer, avReSimple},
		{avPEP440, regexp.MustCompile(`^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*` +
			`([-_\.]?(?:alpha|beta|c|pre|preview|a|b|rc)(0|[1-9][0-9]*))?` +
			`([-_\.]?(?:post|r|rev)(0|[1-9][0-9]*))?` +
			`([-_\.]?(?:d|dev)(0|[1-9][0-9]*))?` +
			`(?:\+([a-z0-9]+(?:[-_\.][a-z0-9]+)*))?$`)},
	}
	avContainerOrder = map[string]int{"stable": 1, "beta": 2, "latest": 3, "dev": 4}
	avModifierOrder  = map[string]int{"rc": 3, "beta": 2, "b": 2, "alpha": 1, "a": 1, "dev": 0, "d": 0}
)

var (
	errAVCompare   = errors.New("AwesomeVersionCompareException")
	errAVNotPorted = errors.New("awesomeversion: semver pre-release comparison not ported")
)

// awesomeVersion is AwesomeVersion(version) for a string.
type awesomeVersion struct{ version string }

func newAwesomeVersion(s string) awesomeVersion {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, ".")
	return awesomeVersion{s}
}

func (v awesomeVersion) str() string {
	for _, p := range []string{"v", "V", "v.", "V."} { // the first that matches wins, as in prefix
		if strings.HasPrefix(v.version, p) {
			return v.version[len(p):]
		}
	}
	return v.version
}

func isHexDigits(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789ABCDEFabcdef", c) {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func (v awesomeVersion) strategy() avStrategy {
	s := v.str()
	if s != "" {
		switch {
		case s == "latest" || s == "dev" || s == "stable" || s == "beta":
			return avSpecialContainer
		case strings.HasPrefix(s, "0x") && len(s) > 2:
			if isHexDigits(s[2:]) {
				return avHexVer
			}
		case isDigits(s):
			return avBuildVer
		}
	}
	for _, d := range avStrategies {
		if d.re.MatchString(s) {
			if d.s == avHexVer { // validate: int(value, 16)
				if _, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64); err != nil {
					continue
				}
			}
			return d.s
		}
	}
	return avUnknown
}

func (v awesomeVersion) simple() bool { return avReSimple.MatchString(v.str()) }

// modifier returns the modifier and whether there is one.
func (v awesomeVersion) modifier() (string, bool) {
	st := v.strategy()
	if st == avSpecialContainer || st == avHexVer {
		return "", false
	}
	var mod string
	have := false
	if st == avSemVer {
		m := avReSemVer.FindStringSubmatch(v.str())
		if m != nil && m[4] != "" {
			mod, have = m[4], true
		}
		if !have {
			return "", false
		}
	} else {
		parts := strings.Split(v.str(), ".")
		if parts[len(parts)-1] == "" {
			return "", false
		}
		mod = parts[len(parts)-1]
	}
	if m := avReModifier.FindStringSubmatch(mod); m != nil {
		return m[2], true
	}
	return mod, have
}

func (v awesomeVersion) modifierType() (string, bool) {
	if v.strategy() == avHexVer {
		return "", false
	}
	mod, _ := v.modifier()
	if m := avReModifier.FindStringSubmatch(mod); m != nil {
		return m[3], true
	}
	if m := avReCompoundMod.FindStringSubmatch(mod); m != nil {
		return m[1], true
	}
	return "", false
}

func (v awesomeVersion) sections() int {
	switch v.strategy() {
	case avSemVer:
		return 3
	case avHexVer, avSpecialContainer, avBuildVer:
		return 1
	}
	mod, hasMod := v.modifier()
	n := 0
	for _, p := range strings.Split(v.str(), ".") {
		if p != "" && (!hasMod || p != mod) {
			n++
		}
	}
	return n
}

// section is section(idx); Python's int has no limit, uint64 is enough for the versions tested here.
func (v awesomeVersion) section(idx int) uint64 {
	switch v.strategy() {
	case avHexVer:
		if idx == 0 {
			n, _ := strconv.ParseUint(v.str()[2:], 16, 64)
			return n
		}
		return 0
	case avBuildVer:
		if idx == 0 {
			n, _ := strconv.ParseUint(v.str(), 10, 64)
			return n
		}
		return 0
	}
	if v.sections() >= idx+1 {
		parts := strings.Split(v.str(), ".")
		if idx < len(parts) {
			if m := avReDigit.FindStringSubmatch(parts[idx]); m != nil {
				n, _ := strconv.ParseUint(m[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

// avResult is a compare handler's answer: decided, and if so whether a > b.
type avResult struct {
	decided, greater bool
}

func avCompareBaseSections(a, b awesomeVersion) avResult {
	biggest := max(a.sections(), b.sections())
	for i := range biggest {
		sa, sb := a.section(i), b.section(i)
		if sa != sb {
			return avResult{true, sa > sb}
		}
	}
	return avResult{}
}

func avCompareModifierSection(a, b awesomeVersion) avResult {
	ma, hasA := a.modifier()
	mb, hasB := b.modifier()
	if !hasA && hasB {
		return avResult{true, true}
	}
	if hasA && hasB {
		pa := strings.Split(a.str(), ".")
		pb := strings.Split(b.str(), ".")
		xa := avReModifier.FindStringSubmatch(pa[len(pa)-1])
		xb := avReModifier.FindStringSubmatch(pb[len(pb)-1])
		if xa != nil && xb != nil {
			if xa[3] == xb[3] {
				na, _ := strconv.Atoi("0" + xa[4])
				nb, _ := strconv.Atoi("0" + xb[4])
				return avResult{true, na > nb}
			}
			oa, okA := avModifierOrder[xa[3]]
			ob, okB := avModifierOrder[xb[3]]
			if okA && okB {
				return avResult{true, oa > ob}
			}
			return avResult{true, xa[3] > xb[3]}
		}
		if avReIsSingleDigit.MatchString(ma) && avReIsSingleDigit.MatchString(mb) {
			return avResult{true, ma > mb}
		}
	}
	return avResult{}
}

// avGreater is AwesomeVersion(a) > b.
func avGreater(as, bs string) (bool, error) {
	a, b := newAwesomeVersion(as), newAwesomeVersion(bs)
	if a.str() == b.str() {
		return false, nil
	}
	if a.strategy() == avUnknown || b.strategy() == avUnknown {
		return false, errAVCompare
	}
	// compare_handler_container
	if a.strategy() == avSpecialContainer {
		if b.strategy() != avSpecialContainer {
			return true, nil
		}
		return avContainerOrder[a.str()] > avContainerOrder[b.str()], nil
	}
	if b.strategy() == avSpecialContainer {
		return false, nil
	}
	// compare_handler_simple
	if a.simple() && b.simple() {
		if r := avCompareBaseSections(a, b); r.decided {
			return r.greater, nil
		}
	}
	// compare_handler_sections
	if r := avCompareBaseSections(a, b); r.decided {
		return r.greater, nil
	}
	if r := avCompareModifierSection(a, b); r.decided {
		return r.greater, nil
	}
	// compare_handler_semver_modifier
	_, okA := a.modifierType()
	_, okB := b.modifierType()
	if (a.strategy() == avSemVer || b.strategy() == avSemVer) && okA && okB {
		return false, errAVNotPorted
	}
	return false, nil
}

// haUpdateEntityState is UpdateEntity.state for the given versions ("" = None) and skipped version.
func haUpdateEntityState(installed, latest, skipped string) (string, error) {
	if installed == "" || latest == "" {
		return "unknown", nil
	}
	if latest == skipped || latest == installed {
		return "off", nil
	}
	newer, err := avGreater(latest, installed)
	switch {
	case errors.Is(err, errAVCompare):
		return "on", nil
	case err != nil:
		return "", err
	case newer:
		return "on", nil
	}
	return "off", nil
}

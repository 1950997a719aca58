package bridge

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The campaign seeds of FuzzStateFile: the first is a good state file with a paused campaign, the others
// break one rule each and must be refused by strict decoding.
func TestStateFileCampaignSeeds(t *testing.T) {
	for i := 0; i < 6; i++ {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzStateFile", "seed-campaign-"+strconv.Itoa(i)))
		require.NoError(t, err)
		line := strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[1])
		text, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
		require.NoError(t, err)
		var st persistedState
		err = decodeStrict([]byte(text), &st, st.check)
		if i == 0 {
			require.NoError(t, err)
			require.Len(t, st.OTA.Campaigns, 1)
			assert.Equal(t, "paused", string(st.OTA.Campaigns[0].State))
			assert.Equal(t, "night", st.OTA.Devices[0].Campaign)
			continue
		}
		assert.Error(t, err, "seed %d must be refused", i)
	}
}

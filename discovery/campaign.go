package discovery

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Campaign sensors: one `sensor` per running update campaign, attached to the bridge's HA device (same
// identifiers), with the campaign's progress in percent as its state and the whole campaign (done, failed
// with reasons, remaining, ETA, bytes, rate) as its attributes. Its discovery config has its own topic, so
// adding and removing it never touches the bridge's own config.

// CampaignTopic is the campaign's retained state topic (`<base>/bridge/campaign/<id>`).
func (in Instance) CampaignTopic(id string) string { return in.BaseTopic + "/bridge/campaign/" + id }

// CampaignObjectID is the discovery object id of a campaign's sensor (`<base>_campaign_<id>`).
func (in Instance) CampaignObjectID(id string) string {
	return ObjectID(in.BaseTopic + "_campaign_" + id)
}

// CampaignConfigTopic is `<prefix>/device/<object_id>/config` of a campaign's sensor.
func (in Instance) CampaignConfigTopic(id string) string {
	return in.DiscoveryPrefix + "/device/" + in.CampaignObjectID(id) + "/config"
}

// ComponentCampaign is the component id of a campaign's sensor.
const ComponentCampaign = "campaign"

// CampaignConfig builds the discovery message of a campaign's progress sensor.
func (in Instance) CampaignConfig(id, name string) (Message, error) {
	if err := in.check(); err != nil {
		return Message{}, err
	}
	if id == "" || strings.ContainsAny(id, "+#/") || !validTopicPart(id) {
		return Message{}, fmt.Errorf("discovery: campaign id %q is not a valid topic level", id)
	}
	if name == "" {
		name = id
	}
	oid := in.CampaignObjectID(id)
	p := devicePayload{
		Device: deviceBlock{Identifiers: []string{in.BridgeIdentifier()}},
		Origin: in.origin(),
		Components: map[string]component{
			ComponentCampaign: {
				Platform:            "sensor",
				Name:                "Campaign " + validString(name),
				UniqueID:            oid,
				DefaultEntityID:     "sensor." + Slug(in.BaseTopic) + "_campaign_" + Slug(id),
				Icon:                "mdi:update",
				StateClass:          "measurement",
				UnitOfMeasurement:   "%",
				StateTopic:          in.CampaignTopic(id),
				ValueTemplate:       "{{ value_json.percent }}",
				JSONAttributesTopic: in.CampaignTopic(id),
				Availability:        in.availability(),
			},
		},
	}
	b, err := json.Marshal(p)
	if err != nil {
		return Message{}, fmt.Errorf("discovery: encode campaign %s: %w", id, err)
	}
	return Message{Topic: in.CampaignConfigTopic(id), Payload: b}, nil
}

// RemoveCampaign is the message that deletes a campaign's sensor.
func (in Instance) RemoveCampaign(id string) Message {
	return Message{Topic: in.CampaignConfigTopic(id)}
}

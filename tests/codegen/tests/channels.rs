//! The generated `channels` module: one type per schema channel, with the
//! id, full name, flags and message type of the schema, and `all()` for
//! servers. Built with the runtime's `codec` feature only: generated
//! channels need no runtime.

use isml_codegen_tests::charging::v1::{Fault, StatusReport, Variable, channels};
use isml_runtime::TopLevel;
use isml_runtime::pubsub::{Channel, ChannelInfo};

fn message_of<C: Channel>() -> u32 {
    <C::Message as TopLevel>::TYPE_ID
}

#[test]
fn generated_channels_match_the_schema() {
    assert_eq!(
        (channels::Telemetry::ID, channels::Telemetry::NAME),
        (1, "charging.v1.telemetry")
    );
    let flags = |info: ChannelInfo| (info.retain, info.keyed);
    assert_eq!(flags(channels::Telemetry::info()), (true, false));
    assert_eq!(flags(channels::Faults::info()), (false, false));
    assert_eq!(flags(channels::Variables::info()), (true, true));
    assert_eq!(message_of::<channels::Telemetry>(), StatusReport::TYPE_ID);
    assert_eq!(message_of::<channels::Faults>(), Fault::TYPE_ID);
    assert_eq!(message_of::<channels::Variables>(), Variable::TYPE_ID);
    let all = channels::all();
    assert_eq!(
        all,
        [
            channels::Telemetry::info(),
            channels::Faults::info(),
            channels::Variables::info()
        ]
    );
    assert_eq!(
        all[2],
        ChannelInfo {
            id: 3,
            name: "charging.v1.variables".into(),
            type_id: Variable::TYPE_ID,
            fingerprint: Variable::FINGERPRINT,
            retain: true,
            keyed: true,
        }
    );
}

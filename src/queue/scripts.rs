//! The Lua scripts behind every queue state change, compiled into the binary. Each script is the
//! shared prelude (`scripts/common.lua`: key names, reclaim, dead-letter and coalescing helpers)
//! followed by its own body, so a state change is one atomic `EVALSHA`.

use std::sync::LazyLock;

use redis::Script;

macro_rules! queue_script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/common.lua"),
                include_str!(concat!("scripts/", $file))
            ))
        });
    };
}

queue_script!(ENQUEUE, "enqueue.lua");
queue_script!(RESERVE, "reserve.lua");
queue_script!(RENEW, "renew.lua");
queue_script!(ACK, "ack.lua");
queue_script!(FAIL, "fail.lua");
queue_script!(RELEASE, "release.lua");
queue_script!(NEXT_DUE, "next_due.lua");
queue_script!(STATS, "stats.lua");
queue_script!(REQUEUE_DEAD, "requeue_dead.lua");
queue_script!(PURGE, "purge.lua");

//! A plugin whose root module was built against provider-sdk 2.0.0, a major version
//! this host does not speak.

use abi_stable::{
    declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_types::VersionStrings, std_types::RString, StableAbi,
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
pub struct PluginModule {
    #[sabi(last_prefix_field)]
    pub manifest: extern "C" fn(u64) -> RString,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "provider_plugin";
    const NAME: &'static str = "provider_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("2.0.0");
}

extern "C" fn manifest(_: u64) -> RString {
    RString::new()
}

#[export_root_module]
pub fn root() -> PluginModuleRef {
    PluginModule { manifest }.leak_into_prefix()
}

//! Gives the shared library its SONAME, so programs linked against `libiocport.so` (the name the
//! install script gives it) load `libiocport.so.0` at run time.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libiocport.so.0");
    println!("cargo:rerun-if-changed=build.rs");
}

//! Which certificate a name gets.

use std::sync::Arc;

use super::Table;
use crate::tls::testing::certificate;

#[test]
fn exact_names_then_one_label_wildcards_then_the_first_certificate() {
    let a = certificate(&["a.example.test"]);
    let wild = certificate(&["*.example.test", "b.example.test"]);
    let other = certificate(&["other.test"]);
    let table = Table::new(&[a.clone(), wild.clone(), other.clone()], false);
    let is = |sni: Option<&str>, want: &crate::tls::certs::Loaded| {
        let got = table.find(sni).expect("a certificate");
        assert!(
            Arc::ptr_eq(&got, &want.key),
            "{sni:?} got the wrong certificate"
        );
    };
    is(Some("a.example.test"), &a);
    is(Some("A.Example.Test."), &a);
    is(Some("b.example.test"), &wild);
    is(Some("zzz.example.test"), &wild);
    is(Some("other.test"), &other);
    // Wildcards cover one label only; the rest falls to the default.
    is(Some("x.y.example.test"), &a);
    is(Some("example.test"), &a);
    is(Some("unknown.test"), &a);
    is(None, &a);
}

#[test]
fn strict_sni_refuses_what_no_certificate_names() {
    let a = certificate(&["a.example.test"]);
    let table = Table::new(std::slice::from_ref(&a), true);
    assert!(table.find(Some("a.example.test")).is_some());
    assert!(table.find(Some("b.example.test")).is_none());
    assert!(table.find(None).is_none());
}

#[test]
fn a_name_goes_to_the_first_certificate_that_lists_it() {
    let first = certificate(&["a.example.test"]);
    let second = certificate(&["a.example.test", "c.example.test"]);
    let table = Table::new(&[first.clone(), second.clone()], false);
    let got = table.find(Some("a.example.test")).expect("served");
    assert!(Arc::ptr_eq(&got, &first.key));
    let got = table.find(Some("c.example.test")).expect("served");
    assert!(Arc::ptr_eq(&got, &second.key));
}

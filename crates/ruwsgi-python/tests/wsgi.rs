//! The request path: environ, start_response, body iteration, errors.

use crate::util::*;

const HELLO: &str = r#"
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'Hello World']
"#;

#[test]
fn hello_world() {
    let mut io = FakeIo::new(b"");
    let out = one_request(HELLO, &vars(&[]), &mut io);
    assert!(!out.exception, "{:?}", host().take_logs());
    assert!(!out.close);
    assert_eq!(io.status_str(), "200 OK");
    assert_eq!(io.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(io.body_str(), "Hello World");
    assert!(io.finished);
}

"""Local stand-ins for services the tests cannot run for real (FASJSON needs FreeIPA,
Pagure is a public forge): small HTTP servers on 127.0.0.1 speaking the same endpoints."""

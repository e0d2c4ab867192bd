"""Wire-level stand-ins for the services outside the system (an SMTP server, an email provider's API,
the Anthropic API), for the tests and for the tools on top (bench, chaos). Standard library and the
packages they speak through only: they import nothing of the project, so any layer may run them."""

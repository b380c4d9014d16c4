"""What the tests share besides fixtures: fixture webs and servers, record builders, runners and checks."""

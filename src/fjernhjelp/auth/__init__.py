"""Identity: passwords, second factors, login, browser and API sessions."""

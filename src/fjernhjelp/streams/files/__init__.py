"""The file stream: listing, download and upload, with the paths the agent allows."""

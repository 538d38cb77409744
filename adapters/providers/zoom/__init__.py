"""Zoom: `meeting.ended` webhooks signed with HMAC-SHA256, participants from the past-meeting report."""

"""The Salesforce CRM port: `SalesforceCrm` over simple-salesforce, built per tenant by `SalesforceTenant`."""

from adapters.crm.salesforce.adapter import SalesforceCrm
from adapters.crm.salesforce.client import Credentials, SalesforceClient
from adapters.crm.salesforce.mapping import SalesforceSettings
from adapters.crm.salesforce.tenant import SalesforceTenant

__all__ = ["Credentials", "SalesforceClient", "SalesforceCrm", "SalesforceSettings", "SalesforceTenant"]
